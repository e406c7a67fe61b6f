"""Running one invocation: a fresh store and instance, limits, ABI, metrics.

:func:`run` is synchronous and meant for a worker thread (see
``app.sandbox._executor``). Every call gets its own ``wasmtime.Store`` and
instance; nothing a guest touched survives the call, and a store is never
shared between threads (wasmtime aborts the process if an instance is used
with another store).
"""

from __future__ import annotations

import threading
import time

import wasmtime

from app.errors import ErrorKind, InvocationFailure
from app.invocation import ExecutionContext, Metrics, Outcome
from app.sandbox import _components, _ffi, _traps
from app.sandbox._abi import Abi
from app.sandbox._engine import FUEL_PER_CPU_S, CompiledModule, SandboxEngine
from app.sandbox._host_bridge import HostBridge
from app.sandbox._limits import Limits
from app.sandbox._state import InvocationState, activate

__all__ = ["run"]

_MASK64 = (1 << 64) - 1
_MAX_TABLES = 16


def run(
    engine: SandboxEngine,
    compiled: CompiledModule,
    input: bytes,
    limits: Limits,
    *,
    context: ExecutionContext,
    deadline: float | None,
    include_logs: bool,
    host_bridge: HostBridge | None = None,
    cancel: threading.Event | None = None,
    real_clock_and_random: bool = False,
    cpu_slice_s: float | None = None,
    config_json: bytes = b"{}",
    cpu_started: float | None = None,
) -> Outcome:
    """Run ``compiled`` on ``input`` under ``limits``; raises ``InvocationFailure``.

    ``deadline`` is the caller's ``time.monotonic()`` limit; the guest stops at
    the earlier of it and ``limits.timeout_ms``, or as soon as ``cancel`` is
    set. ``Outcome.resolved_version`` is left empty for the caller.

    A wasi-stdio guest or a component sees virtual clocks (realtime from
    2000-01-01) and a constant-seeded random source unless
    ``real_clock_and_random`` (a risk-tier grant) gives it real ones. Raw
    guests have neither.

    ``cpu_slice_s`` is for a run on the event-loop thread: the guest is also
    stopped (TIMEOUT) once this thread has spent that much CPU time on it
    (checked at epoch ticks), so being descheduled or waiting for the GIL does
    not count against it, and host functions stop it instead of pausing.
    ``cpu_started`` is the caller's ``time.thread_time()`` just before, if it read it.
    """
    started = time.monotonic()
    stop_at = started + limits.timeout_ms / 1000.0
    if deadline is not None:
        stop_at = min(stop_at, deadline)
    state = InvocationState(
        limits=limits,
        deadline=stop_at,
        cancel=cancel or threading.Event(),
        context=context,
        include_logs=include_logs,
        bridge=host_bridge,
        deterministic=compiled.abi is not Abi.RAW and not real_clock_and_random,
        cpu_slice_s=cpu_slice_s,
        pacer=engine.pacer,
        config_json=config_json,
        fuel_rate=compiled.runs.fuel_rate or FUEL_PER_CPU_S,
        cpu_started=time.thread_time() if cpu_started is None else cpu_started,
    )
    if stop_at <= started or state.cancel.is_set():
        raise InvocationFailure(
            ErrorKind.TIMEOUT, "no time left to run the extension", _metrics(state, started)
        )
    engine.start()
    key = _ffi.register(state)
    try:
        with activate(state), _ffi.owning_memories(key):
            output = _run_in_store(engine, compiled, input, state, key)
        metrics = _metrics(state, started)
        _learn_fuel_rate(compiled, state, metrics)
    except InvocationFailure as raised:
        # A guest refused memory fails in its own way (abort, exit 1, a bad
        # pointer...): the refusal is the cause to report.
        failure = _traps.explain_refusal(raised, state)
        failure.metrics = _metrics(state, started)
        if failure.kind is ErrorKind.FUEL_EXHAUSTED and state.fuel_left_at_stop is None:
            _learn_fuel_rate(compiled, state, failure.metrics)  # exact: all of it
        state.flush_stderr()  # a last line without a newline is often the explanation
        failure.logs, failure.logs_truncated = state.logs, state.logs_truncated
        raise failure from None
    finally:
        _ffi.unregister(key)
        state.store = None  # drop the store (and the guest's memory) now
        state.memory = None
        if state.after_call is not None:
            state.after_call()
    return Outcome(
        output=output,
        resolved_version="",
        metrics=metrics,
        logs=state.logs,
        logs_truncated=state.logs_truncated,
        memory_refused_bytes=state.memory_refused,
    )


def _new_store(engine: SandboxEngine, state: InvocationState, key: int) -> wasmtime.Store:
    store = _ffi.new_store(engine.engine)
    store.set_fuel(state.limits.fuel)
    store.set_limits(
        # With watched memories each memory enforces the limit itself (and
        # records refusals); a store limit would refuse first, unseen.
        memory_size=-1 if engine.watches_memory else state.limits.memory_bytes,
        table_elements=engine.config.max_table_elements,
        instances=1,
        tables=_MAX_TABLES,
        memories=1,
    )
    _ffi.watch_epochs(store, key)
    return store


def _run_in_store(
    engine: SandboxEngine, compiled: CompiledModule, data: bytes, state: InvocationState, key: int
) -> bytes:
    if compiled.component is not None:
        return _components.run(engine, compiled.component, data, state, key)
    store = _new_store(engine, state, key)
    state.store = store
    if compiled.abi is Abi.WASI_STDIO:
        config = wasmtime.WasiConfig()  # no preopens, no args, no sockets
        if state.config_json != b"{}":
            # The definition's config, for authors who read it with getenv(); the
            # environment is otherwise empty.
            config.env = [("AMEIDE_CONFIG", state.config_json.decode())]
        _ffi.set_stdio(config, data, key)
        state.wasi_epoch_ns = time.monotonic_ns()
        store.set_wasi(config)
    pre = compiled.pre if state.deterministic else compiled.pre_real
    assert pre is not None  # a core module
    instance = _instantiate(compiled, pre, store, state)
    memory = _ffi.export_memory(store, instance)
    state.memory = memory
    try:
        if compiled.abi is Abi.RAW:
            assert memory is not None  # checked at compile time
            output = _call_raw(store, instance, memory, data, state)
        else:
            output = _call_wasi(store, instance, state)
    except (wasmtime.Trap, wasmtime.WasmtimeError) as err:
        raise _traps.classify(err, state) from None
    finally:
        _observe(store, memory, state)
    if state.failure is not None:
        raise state.failure
    return output


def _instantiate(
    compiled: CompiledModule,
    pre: wasmtime.InstancePre,
    store: wasmtime.Store,
    state: InvocationState,
) -> wasmtime.Instance:
    try:
        return _ffi.instantiate(pre, store)
    except wasmtime.Trap as err:  # the module's start function trapped
        raise _traps.classify(err, state) from None
    except wasmtime.WasmtimeError as err:
        if state.failure is not None or isinstance(err, wasmtime.ExitTrap):
            raise _traps.classify(err, state) from None
        # Imports were resolved at compile time; what is left is a store limit.
        limit = state.limits.memory_bytes
        if compiled.min_memory_bytes > limit:
            message = (
                f"module declares {compiled.min_memory_bytes} bytes of initial memory,"
                f" the limit is {limit} bytes"
            )
        else:
            message = f"module needs more memory or table space than allowed ({limit} bytes)"
        raise InvocationFailure(ErrorKind.MEMORY_LIMIT, message) from None


def _call_raw(
    store: wasmtime.Store,
    instance: wasmtime.Instance,
    memory: wasmtime.Memory,
    data: bytes,
    state: InvocationState,
) -> bytes:
    alloc = _ffi.export_func(store, instance, "alloc")
    handle = _ffi.export_func(store, instance, "handle")
    assert alloc is not None and handle is not None  # checked at compile time
    ptr = (_ffi.call(store, alloc, len(data), results=1) or 0) & 0xFFFFFFFF
    _check_failure(state)
    size = _ffi.data_len(store, memory)
    if not 0 <= ptr <= size - len(data):
        raise InvocationFailure(ErrorKind.TRAP, "alloc returned a pointer outside guest memory")
    if data:
        _ffi.write(store, memory, ptr, data)
    packed = (_ffi.call(store, handle, ptr, len(data), results=1) or 0) & _MASK64
    _check_failure(state)
    out_ptr, out_len = packed >> 32, packed & 0xFFFFFFFF
    size = _ffi.data_len(store, memory)
    if out_ptr + out_len > size:
        raise InvocationFailure(
            ErrorKind.TRAP,
            f"handle returned output [{out_ptr}, {out_ptr + out_len}) outside guest memory"
            f" of {size} bytes",
        )
    if out_len > state.limits.output_bytes:
        raise InvocationFailure(
            ErrorKind.OUTPUT_TOO_LARGE,
            f"output of {out_len} bytes exceeds the limit of {state.limits.output_bytes} bytes",
        )
    return _ffi.read(store, memory, out_ptr, out_len) if out_len else b""


def _call_wasi(store: wasmtime.Store, instance: wasmtime.Instance, state: InvocationState) -> bytes:
    start = _ffi.export_func(store, instance, "_start")
    assert start is not None  # checked at compile time
    try:
        _ffi.call(store, start, results=0)
    except wasmtime.ExitTrap as exit_:
        if exit_.code != 0:
            raise
    finally:
        state.flush_stderr()
    return bytes(state.stdout)


def _check_failure(state: InvocationState) -> None:
    # A host function may have stopped the guest through its fuel and the
    # guest returned before the next fuel check: the recorded reason stands.
    if state.failure is not None:
        raise state.failure


def _observe(store: wasmtime.Store, memory: wasmtime.Memory | None, state: InvocationState) -> None:
    if memory is not None:
        state.peak_memory = max(state.peak_memory, _ffi.data_len(store, memory))


_MIN_LEARN_CPU_S = 0.002
_RATE_WEIGHT = 0.2


def _learn_fuel_rate(compiled: CompiledModule, state: InvocationState, metrics: Metrics) -> None:
    """Fold a run whose fuel count is exact into the module's fuel per CPU second.

    Runs that return (or run out of fuel) have written their count back, so
    their fuel over the CPU time the thread spent in wasm is what a loop of
    this module burns; a stopped loop's unwritten fuel is estimated with it.
    Short runs are skipped: the runner's own overhead would dominate them.
    There is no engine-wide figure: modules differ by more than 10x (a guest
    whose time goes to WASI calls burns little fuel per CPU second), so a
    module without runs of its own starts from ``FUEL_PER_CPU_S``.
    """
    if metrics.duration_us < _MIN_LEARN_CPU_S * 1e6 or metrics.fuel_consumed <= 0:
        return  # this thread's CPU time cannot exceed the run's wall time: no clock read
    cpu = time.thread_time() - state.cpu_started - state.host_time_s
    if cpu < _MIN_LEARN_CPU_S:
        return
    rate = metrics.fuel_consumed / cpu
    own = compiled.runs.fuel_rate
    compiled.runs.fuel_rate = rate if own is None else own + _RATE_WEIGHT * (rate - own)


def _metrics(state: InvocationState, started: float) -> Metrics:
    fuel_left = state.fuel_left_at_stop
    if fuel_left is None:
        fuel_left = state.store.get_fuel() if state.store is not None else state.limits.fuel
    return Metrics(
        duration_us=int((time.monotonic() - started) * 1_000_000),
        fuel_consumed=max(0, state.limits.fuel - fuel_left),
        peak_memory_bytes=state.peak_memory,
        host_calls=state.host_calls,
    )
