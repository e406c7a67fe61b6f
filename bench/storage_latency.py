"""Invocation latency by where the module comes from, against a real S3 server.

    .venv/bin/python bench/storage_latency.py [--runs N] [--module echo]

Starts SeaweedFS ``weed mini`` on loopback, publishes one example module and
times ``Runtime.invoke`` (in process, no RPC) in three states:

* cold: a new Runtime with an empty module cache directory, so the first call
  downloads the blob from S3, checks its digest and compiles it;
* warm: later calls on the same Runtime (memory LRU hit);
* disk: a new Runtime whose cache directory a cold run filled, so the first
  call deserializes the precompiled artifact (no download, no compile).

Prints the median and min µs of each, and asserts each run took the path it
claims to (the store's counters), so the figures are about what they say.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.invocation import ExecutionContext, Invocation  # noqa: E402
from app.runtime import Runtime  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.telemetry import configure_logging  # noqa: E402
from tests._s3 import SeaweedS3  # noqa: E402
from tests.integration._storage import S3Bucket, example_module  # noqa: E402

CALL = Invocation(
    context=ExecutionContext(tenant_id="bench"),
    extension_id="bench",
    version="",
    input=b'{"name":"Ada"}',
)


async def _first_call_us(settings: Settings) -> tuple[int, Runtime]:
    runtime = Runtime(settings)
    await runtime.start()
    started = time.perf_counter_ns()
    await runtime.invoke(CALL)
    return (time.perf_counter_ns() - started) // 1000, runtime


async def measure(bucket: S3Bucket, work: Path, runs: int) -> dict[str, list[int]]:
    results: dict[str, list[int]] = {"cold": [], "warm": [], "disk": []}
    for run in range(runs):
        cache = work / f"cache-{run}"
        cold_us, runtime = await _first_call_us(bucket.settings(module_cache_dir=cache))
        stats = runtime.modules.stats
        assert (stats.downloads, stats.compiles, stats.disk_hits) == (1, 1, 0), stats
        results["cold"].append(cold_us)
        for _ in range(20):
            started = time.perf_counter_ns()
            await runtime.invoke(CALL)
            results["warm"].append((time.perf_counter_ns() - started) // 1000)
        assert runtime.modules.stats.hits == 20
        await runtime.close()

        disk_us, runtime = await _first_call_us(bucket.settings(module_cache_dir=cache))
        stats = runtime.modules.stats
        assert (stats.downloads, stats.compiles, stats.disk_hits) == (0, 0, 1), stats
        results["disk"].append(disk_us)
        await runtime.close()
    return results


async def main_async(runs: int, module: str, abi: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = SeaweedS3(work / "s3")
        server.start()
        try:
            bucket = S3Bucket(server, "bench", work / "unused-cache")
            await bucket.create()
            await bucket.publish("bench", "1", example_module(module), abi=abi, promote=True)
            results = await measure(bucket, work, runs)
        finally:
            server.stop()
    print(f"{module} ({abi}), {runs} runs; µs per invocation, Runtime.invoke in process")
    print(f"{'path':<6} {'median':>9} {'min':>9} {'samples':>8}")
    for name, values in results.items():
        print(f"{name:<6} {statistics.median(values):>9.0f} {min(values):>9} {len(values):>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--module", default="echo", help="an example under examples/extensions")
    parser.add_argument("--abi", default="raw", choices=["raw", "wasi-stdio"])
    args = parser.parse_args()
    configure_logging("warning", "console")
    asyncio.run(main_async(args.runs, args.module, args.abi))


if __name__ == "__main__":
    main()
