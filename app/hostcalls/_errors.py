"""How a host call fails for the guest: every failure becomes one error answer.

Nothing that goes wrong in a host call ends the invocation: it becomes
``{"error": {"kind": ..., "message": ...}}`` (:func:`app.errors.host_call_error`)
for the guest to handle. Inside the bridge a failure is a :class:`Refused`
carrying its kind; the transport's own exceptions are mapped here, once, so a
timeout is always ``timeout`` and anything else about the connection is
``unavailable``. Messages name the target, never the URL or a header.
"""

from __future__ import annotations

import httpx

from app.errors import HostCallErrorKind
from app.telemetry import get_logger

__all__ = ["TRANSPORT_ERRORS", "Refused", "transport_refusal"]

_log = get_logger("app.hostcalls")


class Refused(Exception):
    """A host call that fails with ``kind``; the guest reads ``message``."""

    def __init__(self, kind: HostCallErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


TRANSPORT_ERRORS = (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, ValueError)
"""What a POST can raise when the call (not the invocation) fails.

``InvalidURL``, ``StreamError`` and a ``ValueError`` from building the request
are not ``HTTPError``s; they are still this call failing.
"""


def transport_refusal(exc: Exception, target: str, service: str, timeout_ms: float) -> Refused:
    """The guest's answer for a transport exception (one of :data:`TRANSPORT_ERRORS`)."""
    if isinstance(exc, httpx.TimeoutException):
        return Refused(
            HostCallErrorKind.TIMEOUT, f"{target} did not answer within {int(timeout_ms)} ms"
        )
    _log.warning("hostcall.transport_error", service=service, error=type(exc).__name__)
    return Refused(HostCallErrorKind.UNAVAILABLE, f"{target} is unreachable")
