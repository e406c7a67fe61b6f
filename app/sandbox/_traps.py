"""Turning what wasmtime raised into an :class:`InvocationFailure`.

Classification uses ``Trap.trap_code`` and the invocation's own recorded
failure, never message text. Text is only cleaned up for the caller: wasmtime
messages carry a wasm backtrace and ``Caused by`` chains that are noise (and
could grow with debug info) on the wire.
"""

from __future__ import annotations

import wasmtime

from app.errors import ErrorKind, InvocationFailure
from app.sandbox._state import InvocationState

_MAX_MESSAGE = 240
_PAGE = 64 * 1024

_BY_CODE = {
    wasmtime.TrapCode.OUT_OF_FUEL: ErrorKind.FUEL_EXHAUSTED,
    wasmtime.TrapCode.INTERRUPT: ErrorKind.TIMEOUT,
    wasmtime.TrapCode.STACK_OVERFLOW: ErrorKind.STACK_OVERFLOW,
}


def clean_message(text: str) -> str:
    """The gist of a wasmtime error: its headline and root cause, without backtrace."""
    head, _, tail = text.partition("Caused by:")
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    cause = lines[0] if lines else ""
    if cause[:1].isdigit() and ": " in cause:
        cause = cause.split(": ", 1)[1]  # "0: In func ..." chains
    cause = cause.removeprefix("wasm trap: ")
    headline = head.strip().splitlines()[0] if head.strip() else ""
    if headline.startswith("error while executing at wasm backtrace"):
        headline = ""
    message = ": ".join(part for part in (headline, cause) if part) or "wasm execution failed"
    return message[:_MAX_MESSAGE]


def _near_memory_limit(state: InvocationState) -> bool:
    # memory.grow past the store limit returns -1 instead of trapping, and the
    # C API has no limiter callback to see it. A guest whose allocator was
    # refused then traps (Rust aborts with `unreachable`) with its memory close
    # to the limit: report that as MEMORY_LIMIT, the actual cause. "Close" is
    # the last quarter of the limit, which covers allocators that grow in
    # chunks; the original trap message is kept in the failure's message.
    window = max(_PAGE, state.limits.memory_bytes // 4)
    return state.peak_memory + window > state.limits.memory_bytes


def classify(error: Exception, state: InvocationState) -> InvocationFailure:
    """The failure to report for ``error`` raised while ``state``'s guest ran."""
    if state.failure is not None:
        return state.failure
    if isinstance(error, wasmtime.ExitTrap):
        return InvocationFailure(ErrorKind.TRAP, f"guest exited with exit status {error.code}")
    code = error.trap_code if isinstance(error, wasmtime.Trap) else None
    kind = _BY_CODE.get(code) if code is not None else None
    if kind is not None:
        return InvocationFailure(kind, _limit_message(kind, state))
    if code is not None and _near_memory_limit(state):
        return InvocationFailure(
            ErrorKind.MEMORY_LIMIT,
            f"guest trapped with its memory at the limit of {state.limits.memory_bytes} bytes"
            f" ({clean_message(str(error))})",
        )
    return InvocationFailure(ErrorKind.TRAP, clean_message(str(error)))


def _limit_message(kind: ErrorKind, state: InvocationState) -> str:
    if kind is ErrorKind.FUEL_EXHAUSTED:
        return f"fuel budget of {state.limits.fuel} exhausted"
    if kind is ErrorKind.TIMEOUT:
        return state.timeout_message()
    return "wasm call stack exhausted"
