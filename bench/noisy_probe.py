"""In-process noisy-neighbour probe: Runtime.invoke, no HTTP (a quick, less noisy look).

.venv/bin/python bench/_probe.py --abusers flood --seconds 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from app.errors import InvocationFailure
from app.invocation import ExecutionContext, Invocation
from app.runtime import Runtime
from app.settings import Settings
from app.telemetry import configure_logging
from bench._harness import ROOT, extensions_dir

GOOD = json.dumps({"data": "x" * 1010}).encode()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else 0.0


async def good(runtime: Runtime, rate: float, seconds: float) -> list[float]:
    latencies: list[float] = []
    loop = asyncio.get_running_loop()

    async def one() -> None:
        began = time.perf_counter()
        await runtime.invoke(Invocation(ExecutionContext("good", request_id="g"), "echo", "", GOOD))
        latencies.append((time.perf_counter() - began) * 1000)

    start = loop.time()
    tasks = []
    for i in range(int(rate * seconds)):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return latencies


async def lag(stop: asyncio.Event, out: list[float]) -> None:
    """Event-loop lag: how late a 2 ms sleep wakes up (GIL waits and loop work)."""
    while not stop.is_set():
        began = time.perf_counter()
        await asyncio.sleep(0.002)
        out.append((time.perf_counter() - began - 0.002) * 1000)


async def abuse(runtime: Runtime, name: str, in_flight: int, stop: asyncio.Event) -> dict[str, int]:
    outcomes: dict[str, int] = {}

    async def worker() -> None:
        while not stop.is_set():
            began = time.perf_counter()
            ctx = ExecutionContext(f"abuser-{name}", request_id="a")
            try:
                await runtime.invoke(Invocation(ctx, name, "", b"1", include_logs=True))
                kind = "ok"
            except InvocationFailure as failure:
                kind = failure.kind.name
            outcomes[kind] = outcomes.get(kind, 0) + 1
            rest = 0.25 - (time.perf_counter() - began)
            if rest > 0:
                await asyncio.sleep(rest)

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return outcomes


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        extensions_dir(work)
        settings = Settings(
            auth_enabled=False,
            extensions_dir=work / "extensions",
            policy_file=ROOT / "config" / "risk-tiers.yaml",
            catalog_poll_interval_s=0,
            breaker_min_calls=10**9,
            **dict(json.loads(args.settings)),
        )
        runtime = Runtime(settings)
        await runtime.start()
        names = [n for n in args.abusers.split(",") if n]
        for name in names:
            with contextlib.suppress(InvocationFailure):
                await runtime.invoke(Invocation(ExecutionContext("x"), name, "", b"1"))
        await good(runtime, args.rate, 1.0)
        quiet, loud, qlag, llag = [], [], [], []
        outcomes: list[dict[str, int]] = []
        for _ in range(args.rounds):
            stop = asyncio.Event()
            probe = asyncio.create_task(lag(stop, qlag))
            quiet += await good(runtime, args.rate, args.seconds)
            stop.set()
            await probe
            stop = asyncio.Event()
            hammer = [asyncio.create_task(abuse(runtime, n, 4, stop)) for n in names]
            await asyncio.sleep(0.5)
            probe = asyncio.create_task(lag(stop, llag))
            loud += await good(runtime, args.rate, args.seconds)
            stop.set()
            await probe
            outcomes += await asyncio.gather(*hammer)
        await runtime.close()
    q95, l95 = pct(quiet, 0.95), pct(loud, 0.95)
    print(
        f"abusers={args.abusers or '-'} quiet p50/p95 {pct(quiet, 0.5):.2f}/{q95:.2f} ms"
        f"  loud p50/p95 {pct(loud, 0.5):.2f}/{l95:.2f} ms  ratio {l95 / q95:.2f}"
        f"  lag p95 quiet/loud {pct(qlag, 0.95):.2f}/{pct(llag, 0.95):.2f} ms"
        f"  outcomes {outcomes}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--abusers", default="loop,bomb,flood")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settings", default="{}")
    parser.add_argument("--log", default="/dev/null")
    args = parser.parse_args()
    sys.stderr = open(args.log, "w")  # noqa: SIM115 - the guest logs go here, as to a log file
    configure_logging("info", "json")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
