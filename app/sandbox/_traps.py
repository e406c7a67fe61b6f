"""Turning what wasmtime raised into an :class:`InvocationFailure`.

Classification uses ``Trap.trap_code`` and the invocation's own recorded
failure. A component's trap reaches Python as a plain ``WasmtimeError``
(wasmtime-py's component calls keep no trap code), so for those the root cause
of the error chain is matched against wasmtime's own trap messages; it is the
last ``Caused by`` line, which wasmtime writes and a guest cannot. Text is
otherwise only cleaned up for the caller: wasmtime messages carry a wasm
backtrace and ``Caused by`` chains that are noise (and could grow with debug
info) on the wire.
"""

from __future__ import annotations

import wasmtime

from app.errors import ErrorKind, InvocationFailure
from app.sandbox._state import InvocationState

__all__ = [
    "classify",
    "clean_message",
    "explain_refusal",
    "is_trap",
    "refusal_message",
]

_MAX_MESSAGE = 240

_BY_CODE = {
    wasmtime.TrapCode.OUT_OF_FUEL: ErrorKind.FUEL_EXHAUSTED,
    wasmtime.TrapCode.INTERRUPT: ErrorKind.TIMEOUT,
    wasmtime.TrapCode.STACK_OVERFLOW: ErrorKind.STACK_OVERFLOW,
}


_BY_ROOT_CAUSE = {
    "wasm trap: all fuel consumed by WebAssembly": ErrorKind.FUEL_EXHAUSTED,
    "wasm trap: interrupt": ErrorKind.TIMEOUT,
    "wasm trap: call stack exhausted": ErrorKind.STACK_OVERFLOW,
}


def _root_cause(text: str) -> str:
    _, found, tail = text.rpartition("Caused by:")
    lines = [line.strip() for line in tail.splitlines() if line.strip()] if found else []
    return lines[-1] if lines else ""


def is_trap(error: Exception) -> bool:
    """Whether ``error`` is the guest trapping (not a link or limit error)."""
    return isinstance(error, wasmtime.Trap) or _root_cause(str(error)).startswith("wasm trap:")


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


def classify(error: Exception, state: InvocationState) -> InvocationFailure:
    """The failure to report for ``error`` raised while ``state``'s guest ran."""
    if state.failure is not None:
        return state.failure
    if isinstance(error, wasmtime.ExitTrap):
        return InvocationFailure(ErrorKind.TRAP, f"guest exited with exit status {error.code}")
    code = error.trap_code if isinstance(error, wasmtime.Trap) else None
    kind = _BY_CODE.get(code) if code is not None else _BY_ROOT_CAUSE.get(_root_cause(str(error)))
    if kind is not None:
        return InvocationFailure(kind, _limit_message(kind, state))
    return InvocationFailure(ErrorKind.TRAP, clean_message(str(error)))


_EXPLAINED_BY_REFUSAL = frozenset({ErrorKind.TRAP, ErrorKind.INVALID_OUTPUT})


def explain_refusal(failure: InvocationFailure, state: InvocationState) -> InvocationFailure:
    """MEMORY_LIMIT instead of ``failure`` if the guest was refused memory before it.

    ``memory.grow`` past the limit answers -1; what the guest does then is its
    own business (Rust aborts with ``unreachable``, C's malloc returns NULL and
    the program exits 1 or dereferences it, an allocator may hand back a bad
    pointer). Whatever failure follows a refusal, the refusal is the cause, so
    a TRAP (any trap, exit status or bad pointer) becomes MEMORY_LIMIT naming
    the refused size and keeping the original text. Limits the runtime enforces
    itself (fuel, time, stack, output size, host calls) keep their kind.
    """
    refused = state.memory_refused
    if not refused or failure.kind not in _EXPLAINED_BY_REFUSAL:
        return failure
    return InvocationFailure(
        ErrorKind.MEMORY_LIMIT, refusal_message(refused, state.limits.memory_bytes, failure.message)
    )


def refusal_message(refused: int, limit: int, then: str) -> str:
    """The MEMORY_LIMIT message for a failure ``then`` that followed a refused growth."""
    head = f"memory of {refused} bytes refused (limit {limit} bytes); then: "
    return head + then[: max(0, _MAX_MESSAGE - len(head))]


def _limit_message(kind: ErrorKind, state: InvocationState) -> str:
    if kind is ErrorKind.FUEL_EXHAUSTED:
        return f"fuel budget of {state.limits.fuel} exhausted"
    if kind is ErrorKind.TIMEOUT:
        return state.timeout_message()
    return "wasm call stack exhausted"
