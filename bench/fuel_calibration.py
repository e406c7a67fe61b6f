"""How much fuel a millisecond of guest compute is here, and where the default fuel runs out.

    .venv/bin/python bench/fuel_calibration.py [--runs N] [--fuel F]

Runs three loops through the real sandbox (``run()``) until each exhausts ``F``
fuel, ``N`` times: ``br`` (the tightest loop, one instruction a round),
``spin`` (the ``spin`` example's xorshift rounds, 26 fuel each) and ``call``
(a function call every round). Prints fuel per wall ms and per CPU ms (p50,
min, max), then how long the default fuel (``_DEFAULT_FUEL``) lasts at the p50
wall rate and 5x slower (a loaded machine: issue 17 saw 2-3x) against the
default deadline (``_DEFAULT_TIMEOUT_MS``): the default fuel is chosen so that
every loop here runs out of fuel (``FUEL_EXHAUSTED``) first.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import wasmtime

from app.errors import ErrorKind, InvocationFailure
from app.invocation import ExecutionContext
from app.sandbox import DeclaredLimits, SandboxEngine, effective_limits, run
from app.settings import Settings

CONTEXT = ExecutionContext(tenant_id="bench", request_id="bench")
SLOWER = 5
ROOT = Path(__file__).resolve().parent.parent

_ALLOC = '(func (export "alloc") (param i32) (result i32) (i32.const 1024))'
LOOPS = {
    "br": f"""(module (memory (export "memory") 1) {_ALLOC}
      (func (export "handle") (param i32 i32) (result i64)
        (loop $forever (br $forever)) (i64.const 0)))""",
    "call": f"""(module (memory (export "memory") 1) {_ALLOC}
      (func $step (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
      (func (export "handle") (param i32 i32) (result i64)
        (local $i i32)
        (loop $forever (local.set $i (call $step (local.get $i))) (br $forever))
        (i64.const 0)))""",
}


def _modules() -> dict[str, bytes]:
    wasm = {name: bytes(wasmtime.wat2wasm(text)) for name, text in LOOPS.items()}
    spin = ROOT / "examples" / "src" / "spin" / "spin.wat"
    wasm["spin"] = bytes(wasmtime.wat2wasm(spin.read_text()))
    return wasm


def measure(engine: SandboxEngine, wasm: bytes, fuel: int, runs: int) -> tuple[list[float], ...]:
    """Fuel per wall ms and per CPU ms of each run that exhausted ``fuel``."""
    compiled = engine.compile(wasm, "raw")
    limits = replace(
        effective_limits(DeclaredLimits(), Settings().limit_bounds, None),
        fuel=fuel,
        timeout_ms=60_000,
    )
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), time.thread_time()
        try:
            run(engine, compiled, b"1000000000000", limits, context=CONTEXT, deadline=None,
                include_logs=False)  # fmt: skip
        except InvocationFailure as failure:
            if failure.kind is not ErrorKind.FUEL_EXHAUSTED:
                raise
        else:
            raise SystemExit("a loop returned before exhausting its fuel")
        wall.append(fuel / ((time.perf_counter() - started) * 1000))
        cpu.append(fuel / ((time.thread_time() - cpu_started) * 1000))
    return wall, cpu


def _stats(values: list[float]) -> str:
    return (
        f"p50 {statistics.median(values) / 1e6:6.2f} M"
        f"  min {min(values) / 1e6:6.2f} M  max {max(values) / 1e6:6.2f} M"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--fuel", type=float, default=1e9, help="fuel per run")
    args = parser.parse_args()
    settings = Settings()
    fuel = int(args.fuel)
    print(f"fuel per run {fuel:,}, {args.runs} runs per loop")
    print(
        f"default fuel {settings.default_fuel:,}, default deadline {settings.default_timeout_ms} ms"
    )
    with SandboxEngine(settings.engine_config) as engine:
        for name, wasm in _modules().items():
            measure(engine, wasm, fuel // 10, 2)  # warm up
            wall, cpu = measure(engine, wasm, fuel, args.runs)
            p50 = statistics.median(wall)
            default_ms = settings.default_fuel / p50
            print(f"{name:5} fuel/wall ms {_stats(wall)}")
            print(f"{'':5} fuel/CPU ms  {_stats(cpu)}")
            print(
                f"{'':5} default fuel lasts {default_ms:5.0f} ms at p50,"
                f" {SLOWER * default_ms:5.0f} ms {SLOWER}x slower"
                f" ({SLOWER * default_ms / settings.default_timeout_ms:.0%} of the deadline)"
            )


if __name__ == "__main__":
    main()
