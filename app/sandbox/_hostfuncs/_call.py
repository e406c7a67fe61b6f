"""``ameide.host_call``: the guest's request out to its :class:`~app.sandbox.HostBridge`,
the answer back into guest memory.

The sandbox only moves bytes and keeps the budget; what a call may do is the
bridge's business. Whatever the guest may handle comes back as an answer
(:class:`app.errors.HostCallRefusal`, the same the bridge gives): calls
not enabled, the call budget spent, a denial. Only a failure that must end
the invocation stops the guest.
"""

from __future__ import annotations

import time

import wasmtime

from app.errors import ErrorKind, HostCallErrorKind, HostCallRefusal, InvocationFailure
from app.sandbox._hostfuncs._marshal import NO_RESPONSE, read, respond
from app.sandbox._state import InvocationState, current
from app.telemetry import get_logger

__all__ = ["answer", "host_call"]

_log = get_logger("app.sandbox")


def answer(state: InvocationState, request: bytes) -> bytes | HostCallRefusal | None:
    """The bridge's response, a refusal for the guest, or ``None`` if the invocation ends."""
    state.host_calls += 1
    if state.bridge is None:
        return HostCallRefusal(HostCallErrorKind.DENIED, "host calls are not enabled")
    if state.host_calls > state.limits.max_host_calls:
        return HostCallRefusal(
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
            return HostCallRefusal(HostCallErrorKind.DENIED, failure.message)
        state.stop(failure.kind, failure.message)
    except Exception:  # noqa: BLE001 - must not unwind into wasmtime
        _log.exception("host bridge failed", request_id=state.context.request_id)
        state.stop(ErrorKind.INTERNAL, "host call failed inside the runtime")
    return None


def host_call(caller: wasmtime.Caller, req_ptr: int, req_len: int) -> int:
    """``host_call(req_ptr, req_len) -> i64``: the response as ``ptr << 32 | len``."""
    state = current()
    if state is None:
        return NO_RESPONSE
    started = time.perf_counter()
    try:
        request = read(caller, req_ptr, req_len)
        if request is None:
            state.stop(ErrorKind.TRAP, "host_call: request is outside guest memory")
            return NO_RESPONSE
        response = answer(state, request)
        if response is None:
            return NO_RESPONSE
        as_json = response.to_json() if isinstance(response, HostCallRefusal) else response
        return respond(caller, state, as_json)
    except Exception:  # noqa: BLE001 - must not unwind into wasmtime
        _log.exception("host_call failed")
        state.stop(ErrorKind.INTERNAL, "host_call failed")
        return NO_RESPONSE
    finally:
        # Waiting on the service is not GIL time: only the least pause applies.
        state.pace(started, holds_gil=False)
