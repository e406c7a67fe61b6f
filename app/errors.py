"""Failure kinds shared by every stage of an invocation.

A stage that refuses or fails an invocation raises :class:`InvocationFailure`
with a kind; only ``app.rpc`` turns it into a wire error. Keeping the kinds in
this leaf module lets the sandbox and storage stay ignorant of Connect.

A failed host call is different: it does not end the invocation but is an
answer the guest reads. Its kinds and its JSON are here too, because two
stages answer them (the sandbox before a call leaves it, ``app.hostcalls``
after), and the guest must not be able to tell which one did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.invocation import LogLine, Metrics


class ErrorKind(StrEnum):
    """Why an invocation failed; names match ``ameide.extensions.v1.ErrorKind``."""

    TIMEOUT = "TIMEOUT"
    FUEL_EXHAUSTED = "FUEL_EXHAUSTED"
    MEMORY_LIMIT = "MEMORY_LIMIT"
    STACK_OVERFLOW = "STACK_OVERFLOW"
    TRAP = "TRAP"
    OUTPUT_TOO_LARGE = "OUTPUT_TOO_LARGE"
    HOST_CALL_DENIED = "HOST_CALL_DENIED"
    EXTENSION_DISABLED = "EXTENSION_DISABLED"
    NOT_FOUND = "NOT_FOUND"
    INTEGRITY_MISMATCH = "INTEGRITY_MISMATCH"
    INVALID_MODULE = "INVALID_MODULE"
    OVERLOADED = "OVERLOADED"
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_OUTPUT = "INVALID_OUTPUT"
    UNAVAILABLE = "UNAVAILABLE"
    HOST_CALL_FAILED = "HOST_CALL_FAILED"
    INTERNAL = "INTERNAL"
    GUEST_ERROR = "GUEST_ERROR"


class InvocationFailure(Exception):
    """An invocation failed for a reason the caller may see.

    ``message`` goes on the wire, so it must never hold host paths, secrets or
    stack traces. ``caller_side`` marks a failure the caller or our capacity
    caused rather than the guest (a TIMEOUT at the caller's own, shorter
    deadline, or while queued): circuit breakers do not count it.
    ``retry_after_ms`` is a hint for ``OVERLOADED``: when a retry
    may succeed (the wire carries it in the error detail and a ``retry-after``
    header).
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        metrics: Metrics | None = None,
        *,
        caller_side: bool = False,
        retry_after_ms: int = 0,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.metrics = metrics
        self.caller_side = caller_side
        self.logs: list[LogLine] = []
        """The guest's log lines up to the failure (only when the caller asked for logs)."""
        self.logs_truncated = False
        self.retry_after_ms = retry_after_ms
        self.resolved_version = ""
        """The version that failed, once resolved (the caller may have named none)."""

    def __repr__(self) -> str:
        return f"InvocationFailure({self.kind.value}, {self.message!r})"


class HostCallErrorKind(StrEnum):
    """``error.kind`` values the guest may see in a host-call response."""

    DENIED = "denied"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    BUDGET_EXHAUSTED = "budget_exhausted"
    TOO_LARGE = "too_large"
    INVALID_REQUEST = "invalid_request"


@dataclass(frozen=True, slots=True)
class HostCallRefusal:
    """A failed host call the guest may handle: a typed ``host-error`` for components,
    the ``{"error": ...}`` JSON (:func:`host_call_error`) for the other ABIs."""

    kind: HostCallErrorKind
    message: str

    def to_json(self) -> bytes:
        return host_call_error(self.kind, self.message)


def host_call_error(kind: HostCallErrorKind, message: str) -> bytes:
    """The bytes a guest receives for a failed host call: ``{"error": {"kind", "message"}}``."""
    return json.dumps({"error": {"kind": kind.value, "message": message}}).encode()
