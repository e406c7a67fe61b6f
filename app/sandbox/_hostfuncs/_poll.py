"""WASI ``poll_oneoff`` that never sleeps past the invocation's deadline."""

from __future__ import annotations

import struct
import time

import wasmtime

from app.errors import ErrorKind
from app.sandbox._hostfuncs import _wasi
from app.sandbox._hostfuncs._marshal import read, write
from app.sandbox._state import InvocationState, current
from app.telemetry import get_logger

__all__ = ["poll_oneoff"]

_log = get_logger("app.sandbox")

_SUBSCRIPTION = struct.Struct("<QB7xIxxxxQQH6x")  # 48 bytes; the u variant at offset 16
_EVENT = struct.Struct("<QHB5xQH6x")  # 32 bytes
_TAG_CLOCK = 0


def _sleep_ns(state: InvocationState, clock_id: int, timeout: int, flags: int) -> int:
    if not flags & _wasi.ABSTIME:
        return timeout
    if state.deterministic:
        return timeout - state.clock_now(clock_id)
    if clock_id == _wasi.CLOCK_REALTIME:
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
        return _wasi.EINVAL
    raw = read(caller, in_ptr, count * _SUBSCRIPTION.size)
    if raw is None:
        return _wasi.EFAULT
    subs = list(_SUBSCRIPTION.iter_unpack(raw))
    ready = [(s[0], s[1]) for s in subs if s[1] != _TAG_CLOCK]
    if not ready:
        fired = _wait_for_clocks(state, subs)
        if fired is None:
            return _wasi.ESUCCESS  # the guest is stopped; what it reads no longer matters
        ready = [(userdata, _TAG_CLOCK) for userdata in fired]
    events = b"".join(_EVENT.pack(userdata, 0, tag, 0, 0) for userdata, tag in ready)
    written = len(ready).to_bytes(4, "little")
    if not (write(caller, out_ptr, events) and write(caller, n_ptr, written)):
        return _wasi.EFAULT
    return _wasi.ESUCCESS


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
        return _wasi.ENOTSUP
    started = time.perf_counter()
    try:
        return _poll(caller, state, (in_ptr, out_ptr, count, n_ptr))
    except Exception:  # noqa: BLE001 - must not unwind into wasmtime
        _log.exception("poll_oneoff failed")
        state.stop(ErrorKind.INTERNAL, "poll_oneoff failed")
        return _wasi.ENOTSUP
    finally:
        state.pace(started, holds_gil=False)  # its own sleep is not GIL time
