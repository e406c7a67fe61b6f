"""Micro-benchmarks of the sandbox: compile, instantiate, call, and whether wasm releases the GIL.

    .venv/bin/python bench/sandbox_micro.py [--rounds N]

Prints µs percentiles for a raw-ABI echo with a 1 KiB input, and the wall-time
ratio of two CPU-bound guests on two threads versus one guest on one thread
(1.0 = perfect overlap, so wasm runs without the GIL; 2.0 = fully serialized).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import wasmtime

from app.invocation import ExecutionContext
from app.sandbox import Abi, DeclaredLimits, SandboxEngine, _ffi, effective_limits, run
from app.sandbox import _runner as runner
from app.sandbox._state import InvocationState, activate
from app.settings import Settings

ECHO_WAT = """
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $len)))
    (local.get $p))
  (func (export "handle") (param $p i32) (param $n i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32))
            (i64.extend_i32_u (local.get $n)))))
"""

# Spins for the iteration count in the input's first 4 bytes (little endian).
SPIN_WAT = """
(module
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "handle") (param $p i32) (param $n i32) (result i64)
    (local $i i32) (local $limit i32) (local $acc i32)
    (local.set $limit (i32.load (local.get $p)))
    (loop $spin
      (local.set $acc (i32.add (local.get $acc) (i32.mul (local.get $i) (i32.const 3))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $spin (i32.lt_u (local.get $i) (local.get $limit))))
    (i32.store (i32.const 0) (local.get $acc))
    (i64.const 4)))
"""

CONTEXT = ExecutionContext(tenant_id="bench", request_id="bench")


def percentiles(samples_us: list[float]) -> str:
    ordered = sorted(samples_us)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {p50:8.1f} µs   p95 {p95:8.1f} µs   (n={len(ordered)})"


def timed(fn: Callable[[], object], rounds: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--spin", type=int, default=300_000_000, help="iterations per CPU guest")
    args = parser.parse_args()

    settings = Settings()
    engine = SandboxEngine(settings.engine_config)
    engine.start()
    echo_wasm = bytes(wasmtime.wat2wasm(ECHO_WAT))
    data = bytes(range(256)) * 4  # 1 KiB
    limits = effective_limits(DeclaredLimits(), settings.limit_bounds, None)
    compiled = engine.compile(echo_wasm, Abi.RAW)

    version = importlib.metadata.version("wasmtime")
    print(f"wasmtime-py {version}, engine fingerprint {engine.fingerprint[:12]}")
    print("compile      ", percentiles(timed(lambda: engine.compile(echo_wasm, Abi.RAW), 200, 5)))

    def fresh_state() -> InvocationState:
        return InvocationState(
            limits=limits,
            deadline=time.monotonic() + 10,
            cancel=threading.Event(),
            context=CONTEXT,
            include_logs=False,
        )

    def instantiate() -> None:
        state = fresh_state()
        key = _ffi.register(state)
        store = runner._new_store(engine, state, key)
        compiled.pre.instantiate(store)
        _ffi.unregister(key)

    print("instantiate  ", percentiles(timed(instantiate, args.rounds)))

    call_samples: list[float] = []

    def call_once() -> None:
        state = fresh_state()
        key = _ffi.register(state)
        store = runner._new_store(engine, state, key)
        state.store = store
        instance = compiled.pre.instantiate(store)
        memory = _ffi.export(store, instance, "memory")
        assert isinstance(memory, wasmtime.Memory)
        with activate(state):
            started = time.perf_counter()
            out = runner._call_raw(store, instance, memory, data, state)
            call_samples.append((time.perf_counter() - started) * 1e6)
        assert out == data
        _ffi.unregister(key)

    timed(call_once, args.rounds)
    print("call (1 KiB) ", percentiles(call_samples[20:]))

    def full() -> None:
        run(engine, compiled, data, limits, context=CONTEXT, deadline=None, include_logs=False)

    print("run() total  ", percentiles(timed(full, args.rounds)))

    # -- GIL: two CPU-bound guests on two threads vs one -------------------------
    spin = engine.compile(bytes(wasmtime.wat2wasm(SPIN_WAT)), Abi.RAW)
    spin_limits = replace(limits, fuel=settings.max_fuel * 1000, timeout_ms=60_000)
    payload = args.spin.to_bytes(4, "little")

    def spin_once() -> None:
        run(engine, spin, payload, spin_limits, context=CONTEXT, deadline=None, include_logs=False)

    spin_once()
    started = time.perf_counter()
    spin_once()
    one = time.perf_counter() - started
    threads = [threading.Thread(target=spin_once) for _ in range(2)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    two = time.perf_counter() - started
    print(
        f"GIL          one guest {one * 1000:.0f} ms, two guests on two threads"
        f" {two * 1000:.0f} ms: ratio {two / one:.2f} (1.0 = parallel, 2.0 = serialized)"
    )

    # -- small calls: throughput with 1 vs 2 threads ------------------------------
    def throughput(n_threads: int, per_thread: int = 3000) -> float:
        def worker() -> None:
            for _ in range(per_thread):
                full()

        workers = [threading.Thread(target=worker) for _ in range(n_threads)]
        started = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return n_threads * per_thread / (time.perf_counter() - started)

    t1, t2 = throughput(1), throughput(2)
    print(f"echo calls/s one thread {t1:,.0f}, two threads {t2:,.0f}: x{t2 / t1:.2f}")
    engine.close()


if __name__ == "__main__":
    main()
