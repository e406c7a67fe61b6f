"""Deterministic WASI clocks and random: ``clock_time_get``, ``clock_res_get``, ``random_get``.

The same guest with the same input reads the same times and the same random
bytes on every run (the state is in :class:`app.sandbox._state.InvocationState`),
unless the tier asks for wasmtime's real ones.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

import wasmtime

from app.errors import ErrorKind
from app.sandbox._hostfuncs import _wasi
from app.sandbox._hostfuncs._marshal import fits, guest_memory, poke
from app.sandbox._state import CLOCK_STEP_NS, InvocationState, current
from app.telemetry import get_logger

__all__ = ["RANDOM_BUDGET", "RANDOM_MAX_CALL", "clock_res_get", "clock_time_get", "random_get"]

_log = get_logger("app.sandbox")

_TIMESTAMP = struct.Struct("<Q")

RANDOM_MAX_CALL = 1 << 20
"""Largest deterministic ``random_get``; a longer one gets EINVAL."""
RANDOM_BUDGET = 16 << 20
"""Deterministic random bytes per invocation; a call that would pass it gets EINVAL."""


def _guarded(name: str, caller: wasmtime.Caller, body: Callable[[InvocationState], int]) -> int:
    """Run a WASI replacement's ``body``; an internal failure stops the guest, never raises."""
    state = current()
    if state is None:
        return _wasi.ENOTSUP
    started = time.perf_counter()
    try:
        return body(state)
    except Exception:  # noqa: BLE001 - must not unwind into wasmtime
        _log.exception(f"{name} failed")
        state.stop(ErrorKind.INTERNAL, f"{name} failed")
        return _wasi.ENOTSUP
    finally:
        state.pace(started)


def _timestamp(
    caller: wasmtime.Caller, state: InvocationState, clock_id: int, out_ptr: int, *, read: bool
) -> int:
    """``clock_time_get`` (``read``) or ``clock_res_get`` on the virtual clocks."""
    clock_id &= 0xFFFFFFFF
    if clock_id in _wasi.CLOCK_CPUTIME:
        return _wasi.EBADF
    if clock_id not in (_wasi.CLOCK_REALTIME, _wasi.CLOCK_MONOTONIC):
        return _wasi.EINVAL
    memory, out_ptr = guest_memory(caller, state), out_ptr & 0xFFFFFFFF
    if not fits(caller, memory, out_ptr, _TIMESTAMP.size):
        return _wasi.EFAULT  # and the clock does not advance
    assert memory is not None
    value = state.read_clock(clock_id) if read else CLOCK_STEP_NS
    poke(caller, memory, out_ptr, _TIMESTAMP.pack(value))
    return _wasi.ESUCCESS


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
        return _wasi.EINVAL
    if length == 0:
        return _wasi.ESUCCESS  # touches no memory (wasmtime accepts any pointer too)
    memory, buf = guest_memory(caller, state), buf & 0xFFFFFFFF
    if not fits(caller, memory, buf, length):
        return _wasi.EFAULT  # checked before making (and budgeting) any bytes
    assert memory is not None
    poke(caller, memory, buf, state.random_bytes(length))
    return _wasi.ESUCCESS


def random_get(caller: wasmtime.Caller, buf: int, length: int) -> int:
    """WASI ``random_get`` from the invocation's seeded keystream (same calls, same bytes).

    At most ``RANDOM_MAX_CALL`` bytes per call and ``RANDOM_BUDGET`` per
    invocation (EINVAL beyond): the bytes are made in Python, outside fuel
    metering and out of reach of the epoch deadline.
    """
    return _guarded("random_get", caller, lambda state: _random(caller, state, buf, length))
