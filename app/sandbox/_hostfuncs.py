"""Host functions: ``ameide.host_log``, ``ameide.host_call`` and WASI replacements.

For wasi-stdio, ``poll_oneoff`` is always replaced by one bounded by the
deadline; in deterministic mode (the default) ``clock_time_get``,
``clock_res_get`` and ``random_get`` are replaced by virtual clocks and a
seeded random source (see ``_state``).

They are defined once per engine on a store-independent ``Linker`` and find
their invocation with :func:`app.sandbox._state.current`. None of them ever
raises into wasmtime (see ``_state`` for why): a fault is recorded on the
invocation and the guest is stopped through its fuel.
"""

from __future__ import annotations

import ctypes
import struct
import time
from collections.abc import Callable
from typing import Any

import wasmtime

from app.errors import ErrorKind, HostCallErrorKind, InvocationFailure, host_call_error
from app.invocation import LogLevel
from app.sandbox import _ffi, _traps
from app.sandbox._state import CLOCK_STEP_NS, InvocationState, current
from app.telemetry import get_logger

_log = get_logger("app.sandbox")

_I32 = wasmtime.ValType.i32()
_I64 = wasmtime.ValType.i64()
_U64 = 1 << 64
_NO_RESPONSE = -1

# WASI preview1 errno values and layouts (wasi_snapshot_preview1.witx).
_ESUCCESS = 0
_EBADF = 8
_EFAULT = 21
_EINVAL = 28
_ENOTSUP = 58
_SUBSCRIPTION = struct.Struct("<QB7xIxxxxQQH6x")  # 48 bytes; the u variant at offset 16
_EVENT = struct.Struct("<QHB5xQH6x")  # 32 bytes
_TIMESTAMP = struct.Struct("<Q")
_TAG_CLOCK = 0
_CLOCK_REALTIME = 0
_CLOCK_MONOTONIC = 1
_CLOCK_CPUTIME = (2, 3)  # process, thread: wasmtime answers EBADF, and so do we
_ABSTIME = 1

RANDOM_MAX_CALL = 1 << 20
"""Largest deterministic ``random_get``; a longer one gets EINVAL."""
RANDOM_BUDGET = 16 << 20
"""Deterministic random bytes per invocation; a call that would pass it gets EINVAL."""


def _memory(caller: wasmtime.Caller) -> wasmtime.Memory | None:
    memory = caller.get("memory")
    return memory if isinstance(memory, wasmtime.Memory) else None


# The clock and random replacements may run often (a guest timing a loop), so
# they skip the wrappers above: the guest memory comes from the invocation (no
# export lookup) and bytes go in with one memmove (``Memory.write`` costs ~3 µs
# more per call). Together 18.7 -> 13 µs per call, ~9 µs of it wasmtime-py's
# own trampoline.


def _guest_memory(caller: wasmtime.Caller, state: InvocationState) -> wasmtime.Memory | None:
    return state.memory if state.memory is not None else _memory(caller)


def _fits(caller: wasmtime.Caller, memory: wasmtime.Memory | None, ptr: int, length: int) -> bool:
    """Whether ``[ptr, ptr+length)`` (``ptr`` already unsigned) lies inside ``memory``."""
    return memory is not None and ptr + length <= memory.data_len(caller)


def _poke(caller: wasmtime.Caller, memory: wasmtime.Memory, ptr: int, data: bytes) -> None:
    """Copy ``data`` to ``ptr``; the caller checked it with :func:`_fits` just before."""
    base = ctypes.addressof(memory.data_ptr(caller).contents)
    ctypes.memmove(base + ptr, data, len(data))


def _read(caller: wasmtime.Caller, ptr: int, length: int) -> bytes | None:
    """Guest bytes ``[ptr, ptr+length)``, or ``None`` if that is outside its memory.

    Arguments arrive as signed i32s; the guest means unsigned addresses.
    """
    ptr, length = ptr & 0xFFFFFFFF, length & 0xFFFFFFFF
    memory = _memory(caller)
    if memory is None or ptr + length > memory.data_len(caller):
        return None
    return bytes(memory.read(caller, ptr, ptr + length)) if length else b""


def _write(caller: wasmtime.Caller, ptr: int, data: bytes) -> bool:
    ptr &= 0xFFFFFFFF
    memory = _memory(caller)
    if memory is None or ptr + len(data) > memory.data_len(caller):
        return False
    if data:
        memory.write(caller, data, ptr)
    return True


def _observe_memory(caller: wasmtime.Caller, state: InvocationState) -> None:
    memory = _memory(caller)
    if memory is not None:
        state.peak_memory = max(state.peak_memory, memory.data_len(caller))


def pack(ptr: int, length: int) -> int:
    """``ptr << 32 | length`` as the signed i64 wasm expects."""
    value = ((ptr & 0xFFFFFFFF) << 32) | (length & 0xFFFFFFFF)
    return value - _U64 if value >= 1 << 63 else value


def host_log(caller: wasmtime.Caller, level: int, ptr: int, length: int) -> None:
    """``host_log(level, ptr, len)``: one guest log line, capped by the log budget."""
    state = current()
    if state is None:
        return
    started = time.perf_counter()
    try:
        length &= 0xFFFFFFFF
        if state.logs_truncated or length > state.log_budget():
            state.truncate_logs()
            return
        raw = _read(caller, ptr, length)
        if raw is None:
            state.stop(ErrorKind.TRAP, "host_log: message is outside guest memory")
            return
        state.log(LogLevel(level) if 1 <= level <= 4 else LogLevel.INFO, raw)
    except Exception:  # noqa: BLE001 - must not unwind into wasmtime
        _log.exception("host_log failed")
        state.stop(ErrorKind.INTERNAL, "host_log failed")
    finally:
        state.pace(started)


def _respond(
    caller: wasmtime.Caller, state: InvocationState, payload: bytes, what: str = "host_call"
) -> int:
    """Copy ``payload`` into guest memory through its ``alloc``; packed ptr/len or -1."""
    alloc = caller.get("alloc")
    if not isinstance(alloc, wasmtime.Func):
        return _NO_RESPONSE
    try:
        ptr = _ffi.call(caller, alloc, len(payload), results=1)
    except (wasmtime.Trap, wasmtime.WasmtimeError) as err:
        failure = _traps.classify(err, state)
        state.stop(failure.kind, f"alloc failed during {what}: {failure.message}")
        return _NO_RESPONSE
    if not isinstance(ptr, int) or not _write(caller, ptr & 0xFFFFFFFF, payload):
        state.stop(ErrorKind.TRAP, f"{what}: alloc returned a pointer outside guest memory")
        return _NO_RESPONSE
    _observe_memory(caller, state)
    return pack(ptr, len(payload))


def _answer(state: InvocationState, request: bytes) -> bytes | None:
    """The bridge's response, a denial for the guest, or ``None`` if the invocation ends."""
    state.host_calls += 1
    if state.bridge is None:
        return host_call_error(HostCallErrorKind.DENIED, "host calls are not enabled")
    if state.host_calls > state.limits.max_host_calls:
        return host_call_error(
            HostCallErrorKind.BUDGET_EXHAUSTED,
            f"host call budget of {state.limits.max_host_calls} calls is spent",
        )
    remaining_ms = state.remaining_s() * 1000.0
    if remaining_ms <= 0:
        state.stop(ErrorKind.TIMEOUT, state.timeout_message())
        return None
    try:
        return state.bridge.call(request, state.context, remaining_ms)
    except InvocationFailure as failure:
        if failure.kind is ErrorKind.HOST_CALL_DENIED:
            return host_call_error(HostCallErrorKind.DENIED, failure.message)
        state.stop(failure.kind, failure.message)
    except Exception:  # noqa: BLE001 - must not unwind into wasmtime
        _log.exception("host bridge failed", request_id=state.context.request_id)
        state.stop(ErrorKind.INTERNAL, "host call failed inside the runtime")
    return None


def host_call(caller: wasmtime.Caller, req_ptr: int, req_len: int) -> int:
    """``host_call(req_ptr, req_len) -> i64``: the response as ``ptr << 32 | len``."""
    state = current()
    if state is None:
        return _NO_RESPONSE
    started = time.perf_counter()
    try:
        request = _read(caller, req_ptr, req_len)
        if request is None:
            state.stop(ErrorKind.TRAP, "host_call: request is outside guest memory")
            return _NO_RESPONSE
        response = _answer(state, request)
        return _NO_RESPONSE if response is None else _respond(caller, state, response)
    except Exception:  # noqa: BLE001 - must not unwind into wasmtime
        _log.exception("host_call failed")
        state.stop(ErrorKind.INTERNAL, "host_call failed")
        return _NO_RESPONSE
    finally:
        # Waiting on the service is not GIL time: only the least pause applies.
        state.pace(started, holds_gil=False)


def host_config(caller: wasmtime.Caller) -> int:
    """``host_config() -> i64``: the definition's ``config`` as JSON, ``ptr << 32 | len``.

    Written through the guest's ``alloc`` like a host-call response; ``-1``
    when the guest has no ``alloc``.
    """
    state = current()
    if state is None:
        return _NO_RESPONSE
    try:
        return _respond(caller, state, state.config_json, "host_config")
    except Exception:  # noqa: BLE001 - must not unwind into wasmtime
        _log.exception("host_config failed")
        state.stop(ErrorKind.INTERNAL, "host_config failed")
        return _NO_RESPONSE


def _sleep_ns(state: InvocationState, clock_id: int, timeout: int, flags: int) -> int:
    if not flags & _ABSTIME:
        return timeout
    if state.deterministic:
        return timeout - state.clock_now(clock_id)
    if clock_id == _CLOCK_REALTIME:
        return timeout - time.time_ns()
    # wasmtime's monotonic clock counts from the WASI context's creation.
    return timeout - (time.monotonic_ns() - state.wasi_epoch_ns)


def _wait_for_clocks(state: InvocationState, subs: list[tuple[int, ...]]) -> list[int] | None:
    """Sleep until the earliest clock fires, never past the deadline.

    Returns the userdata of the clocks that fired, or ``None`` after stopping
    the guest because the deadline came first or the caller left. Virtual
    clocks move forward by the time slept, so a guest reading the clock after
    a sleep sees it passed (deterministically).
    """
    waits = [(max(0, _sleep_ns(state, s[2], s[3], s[5])), s[0]) for s in subs]
    shortest = min(w for w, _ in waits)
    budget = state.remaining_s()
    if shortest / 1e9 >= budget:
        state.cancel.wait(max(0.0, budget))  # returns early only if the caller leaves
        interrupted = True
    else:
        interrupted = shortest > 0 and state.cancel.wait(shortest / 1e9)
    if interrupted:
        if state.cancel.is_set():
            state.stop(ErrorKind.TIMEOUT, "invocation cancelled: the caller stopped waiting")
        else:
            state.stop(ErrorKind.TIMEOUT, state.timeout_message())
        return None
    if state.deterministic:
        state.advance_clock(shortest)
    return [userdata for w, userdata in waits if w <= shortest]


def _poll(caller: wasmtime.Caller, state: InvocationState, args: tuple[int, int, int, int]) -> int:
    in_ptr, out_ptr, count, n_ptr = args
    count &= 0xFFFFFFFF
    if count == 0:
        return _EINVAL
    raw = _read(caller, in_ptr, count * _SUBSCRIPTION.size)
    if raw is None:
        return _EFAULT
    subs = list(_SUBSCRIPTION.iter_unpack(raw))
    ready = [(s[0], s[1]) for s in subs if s[1] != _TAG_CLOCK]
    if not ready:
        fired = _wait_for_clocks(state, subs)
        if fired is None:
            return _ESUCCESS  # the guest is stopped; what it reads no longer matters
        ready = [(userdata, _TAG_CLOCK) for userdata in fired]
    events = b"".join(_EVENT.pack(userdata, 0, tag, 0, 0) for userdata, tag in ready)
    written = len(ready).to_bytes(4, "little")
    if not (_write(caller, out_ptr, events) and _write(caller, n_ptr, written)):
        return _EFAULT
    return _ESUCCESS


def poll_oneoff(caller: wasmtime.Caller, in_ptr: int, out_ptr: int, count: int, n_ptr: int) -> int:
    """WASI ``poll_oneoff`` that never sleeps past the invocation's deadline.

    wasmtime's own implementation blocks the thread for the whole requested
    time, and epoch interruption cannot reach into a host call. Here clock
    subscriptions wait on the invocation's cancel event for at most the time
    left; fd subscriptions (stdin is in memory, stdout/stderr never block) are
    reported ready at once.
    """
    state = current()
    if state is None:
        return _ENOTSUP
    started = time.perf_counter()
    try:
        return _poll(caller, state, (in_ptr, out_ptr, count, n_ptr))
    except Exception:  # noqa: BLE001 - must not unwind into wasmtime
        _log.exception("poll_oneoff failed")
        state.stop(ErrorKind.INTERNAL, "poll_oneoff failed")
        return _ENOTSUP
    finally:
        state.pace(started, holds_gil=False)  # its own sleep is not GIL time


def _guarded(name: str, caller: wasmtime.Caller, body: Callable[[InvocationState], int]) -> int:
    """Run a WASI replacement's ``body``; an internal failure stops the guest, never raises."""
    state = current()
    if state is None:
        return _ENOTSUP
    started = time.perf_counter()
    try:
        return body(state)
    except Exception:  # noqa: BLE001 - must not unwind into wasmtime
        _log.exception(f"{name} failed")
        state.stop(ErrorKind.INTERNAL, f"{name} failed")
        return _ENOTSUP
    finally:
        state.pace(started)


def _timestamp(
    caller: wasmtime.Caller, state: InvocationState, clock_id: int, out_ptr: int, *, read: bool
) -> int:
    """``clock_time_get`` (``read``) or ``clock_res_get`` on the virtual clocks."""
    clock_id &= 0xFFFFFFFF
    if clock_id in _CLOCK_CPUTIME:
        return _EBADF
    if clock_id not in (_CLOCK_REALTIME, _CLOCK_MONOTONIC):
        return _EINVAL
    memory, out_ptr = _guest_memory(caller, state), out_ptr & 0xFFFFFFFF
    if not _fits(caller, memory, out_ptr, _TIMESTAMP.size):
        return _EFAULT  # and the clock does not advance
    assert memory is not None
    value = state.read_clock(clock_id) if read else CLOCK_STEP_NS
    _poke(caller, memory, out_ptr, _TIMESTAMP.pack(value))
    return _ESUCCESS


def clock_time_get(caller: wasmtime.Caller, clock_id: int, precision: int, out_ptr: int) -> int:
    """WASI ``clock_time_get`` on the invocation's virtual clocks (``precision`` is ignored).

    Realtime starts at 2000-01-01T00:00:00Z, monotonic at 0; every successful
    read advances both by ``CLOCK_STEP_NS``.
    """
    return _guarded(
        "clock_time_get",
        caller,
        lambda state: _timestamp(caller, state, clock_id, out_ptr, read=True),
    )


def clock_res_get(caller: wasmtime.Caller, clock_id: int, out_ptr: int) -> int:
    """WASI ``clock_res_get`` for the virtual clocks: ``CLOCK_STEP_NS``."""
    return _guarded(
        "clock_res_get",
        caller,
        lambda state: _timestamp(caller, state, clock_id, out_ptr, read=False),
    )


def _random(caller: wasmtime.Caller, state: InvocationState, buf: int, length: int) -> int:
    length &= 0xFFFFFFFF
    if length > RANDOM_MAX_CALL or state.random_used + length > RANDOM_BUDGET:
        return _EINVAL
    if length == 0:
        return _ESUCCESS  # touches no memory (wasmtime accepts any pointer too)
    memory, buf = _guest_memory(caller, state), buf & 0xFFFFFFFF
    if not _fits(caller, memory, buf, length):
        return _EFAULT  # checked before making (and budgeting) any bytes
    assert memory is not None
    _poke(caller, memory, buf, state.random_bytes(length))
    return _ESUCCESS


def random_get(caller: wasmtime.Caller, buf: int, length: int) -> int:
    """WASI ``random_get`` from the invocation's seeded keystream (same calls, same bytes).

    At most ``RANDOM_MAX_CALL`` bytes per call and ``RANDOM_BUDGET`` per
    invocation (EINVAL beyond): the bytes are made in Python, outside fuel
    metering and out of reach of the epoch deadline.
    """
    return _guarded("random_get", caller, lambda state: _random(caller, state, buf, length))


_WASI = "wasi_snapshot_preview1"


def define(linker: wasmtime.Linker, *, wasi: bool, deterministic: bool = True) -> None:
    """Add the host functions and, for WASI, wasmtime's WASI with replacements.

    ``poll_oneoff`` is always the bounded one; with ``deterministic`` the
    clocks and ``random_get`` are the virtual ones too, otherwise wasmtime's.
    """
    funcs: list[tuple[str, str, wasmtime.FuncType, Any]] = [
        ("ameide", "host_log", wasmtime.FuncType([_I32, _I32, _I32], []), host_log),
        ("ameide", "host_call", wasmtime.FuncType([_I32, _I32], [_I64]), host_call),
        ("ameide", "host_config", wasmtime.FuncType([], [_I64]), host_config),
    ]
    if wasi:
        linker.allow_shadowing = True
        linker.define_wasi()
        poll_type = wasmtime.FuncType([_I32, _I32, _I32, _I32], [_I32])
        funcs.append((_WASI, "poll_oneoff", poll_type, poll_oneoff))
        if deterministic:
            time_type = wasmtime.FuncType([_I32, _I64, _I32], [_I32])
            two_i32 = wasmtime.FuncType([_I32, _I32], [_I32])
            funcs += [
                (_WASI, "clock_time_get", time_type, clock_time_get),
                (_WASI, "clock_res_get", two_i32, clock_res_get),
                (_WASI, "random_get", two_i32, random_get),
            ]
    for module, name, ty, fn in funcs:
        linker.define_func(module, name, ty, fn, access_caller=True)
    linker.allow_shadowing = False
