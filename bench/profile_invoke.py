"""The in-process hot path in a loop, for a profiler: ``Runtime.invoke`` on one workload.

    .venv/bin/pyinstrument -i 0.0001 bench/profile_invoke.py --calls 5000
    .venv/bin/python bench/profile_invoke.py --workload hello

No network and no server: catalog, controls, module cache, sandbox, metrics
and spans, exactly as a request reaches them after the RPC layer. Prints the
mean µs per call and how many runs took the inline fast path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.invocation import ExecutionContext, Invocation  # noqa: E402
from app.runtime import Runtime  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.telemetry import configure_logging  # noqa: E402

INPUTS = {
    "echo": {"data": "x" * 1010},
    "hello": {"name": "Ada"},
    "spin": {"iterations": 1000000},
}


async def main_async(workload: str, calls: int) -> None:
    settings = Settings(
        auth_enabled=False,
        extensions_dir=ROOT / "examples" / "extensions",
        policy_file=ROOT / "config" / "risk-tiers.yaml",
        catalog_poll_interval_s=0,
    )
    runtime = Runtime(settings)
    await runtime.start()
    context = ExecutionContext(tenant_id="bench", request_id="bench")
    invocation = Invocation(context, workload, "", json.dumps(INPUTS[workload]).encode())
    try:
        for _ in range(200):
            await runtime.invoke(invocation)
        started = time.perf_counter()
        for _ in range(calls):
            await runtime.invoke(invocation)
        elapsed = time.perf_counter() - started
    finally:
        await runtime.close()
    print(
        f"{workload}: {elapsed / calls * 1e6:.1f} µs per Runtime.invoke over {calls} calls;"
        f" inline runs {runtime.fastpath.inline_runs}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(INPUTS), default="echo")
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    configure_logging("warning", "console")
    asyncio.run(main_async(args.workload, args.calls))


if __name__ == "__main__":
    main()
