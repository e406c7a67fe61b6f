"""Wire errors: the one translation from any failure to what a Connect or gRPC client sees.

Handlers and layers raise what they mean (an :class:`InvocationFailure`, an
:class:`AuthError`, an :class:`InvalidRequest`) and never build a wire error
themselves; the outermost layer (``_sanitize``) hands every failure to
:func:`to_connect_error`. There used to be one mapping per service, and they
could disagree about the same refusal; now a kind of failure has one code.
Anything unexpected becomes ``internal`` naming the request id, with the
detail in the log only, so no host path or secret reaches a client.
"""

from __future__ import annotations

import math

from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from app._ids import new_request_id
from app.auth import AuthError, PermissionDenied, Unauthenticated
from app.errors import ErrorKind, InvocationFailure
from app.invocation import LogLine
from app.rpc._context import Call
from app.rpc._messages import log_lines, metrics_message
from app.telemetry import get_logger

__all__ = [
    "ECHO_CHARS",
    "ERROR_LOG_BYTES",
    "MESSAGE_CHARS",
    "InvalidRequest",
    "clip",
    "code_for",
    "failure_headers",
    "last_lines",
    "to_connect_error",
]

_log = get_logger("app.rpc")

_CODES: dict[ErrorKind, Code] = {
    ErrorKind.TIMEOUT: Code.DEADLINE_EXCEEDED,
    ErrorKind.FUEL_EXHAUSTED: Code.RESOURCE_EXHAUSTED,
    ErrorKind.MEMORY_LIMIT: Code.RESOURCE_EXHAUSTED,
    ErrorKind.STACK_OVERFLOW: Code.RESOURCE_EXHAUSTED,
    ErrorKind.TRAP: Code.ABORTED,
    ErrorKind.OUTPUT_TOO_LARGE: Code.RESOURCE_EXHAUSTED,
    ErrorKind.HOST_CALL_DENIED: Code.PERMISSION_DENIED,
    ErrorKind.EXTENSION_DISABLED: Code.FAILED_PRECONDITION,
    ErrorKind.NOT_FOUND: Code.NOT_FOUND,
    ErrorKind.INTEGRITY_MISMATCH: Code.DATA_LOSS,
    ErrorKind.INVALID_MODULE: Code.FAILED_PRECONDITION,
    ErrorKind.OVERLOADED: Code.RESOURCE_EXHAUSTED,
    ErrorKind.INVALID_INPUT: Code.INVALID_ARGUMENT,
    ErrorKind.INVALID_OUTPUT: Code.FAILED_PRECONDITION,
    ErrorKind.UNAVAILABLE: Code.UNAVAILABLE,
    ErrorKind.HOST_CALL_FAILED: Code.UNAVAILABLE,
    ErrorKind.INTERNAL: Code.INTERNAL,
    ErrorKind.GUEST_ERROR: Code.FAILED_PRECONDITION,
}


class InvalidRequest(Exception):
    """A request whose shape the protocol accepted but the method cannot use.

    For requests that never become an invocation (the admin RPC, the codec);
    an invocation's own bad input is ``InvocationFailure(INVALID_INPUT)``,
    which carries the typed detail. ``message`` goes on the wire.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_REFUSALS: tuple[tuple[type[Exception], Code], ...] = (
    (Unauthenticated, Code.UNAUTHENTICATED),
    (PermissionDenied, Code.PERMISSION_DENIED),
    (AuthError, Code.UNAUTHENTICATED),  # a refusal that names no reason: not proven, fail closed
    (InvalidRequest, Code.INVALID_ARGUMENT),
)
"""Refusals of the caller, most specific first: a code and the (fixed-text) message."""

ECHO_CHARS = 128
"""Longest caller string (extension id, version, request id) echoed in an error."""
MESSAGE_CHARS = 512
"""Longest error message: a fixed text plus the caller strings it names."""


def clip(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters, ending in ``...`` when cut.

    Errors echo what the caller sent; unbounded, a 1 MB extension id made a
    5.7 MB Connect error, and over gRPC a 100 KB one overflowed the client's
    metadata limit (the message and the detail travel in trailers) instead of
    reading ``NOT_FOUND``.
    """
    return text if len(text) <= limit else text[: limit - 3] + "..."


def code_for(kind: ErrorKind) -> Code:
    """The Connect/gRPC code a kind is reported with."""
    return _CODES[kind]


def to_connect_error(error: Exception, call: Call | None = None) -> ConnectError:
    """The Connect error a failure is answered with; ``call`` is the RPC it ended.

    A ``ConnectError`` is already the protocol's own answer (a body that does
    not decode, one over the size cap, a cancelled call) and passes unchanged.
    Refusals of the caller carry no detail; an invocation's failure carries an
    ``InvocationError`` detail clients can branch on. Every string that may
    hold caller input is bounded here (see :func:`clip`).
    """
    if isinstance(error, ConnectError):
        return error
    if isinstance(error, InvocationFailure):
        return _invocation_error(error, call)
    for refusal, code in _REFUSALS:
        if isinstance(error, refusal):
            return ConnectError(code, clip(str(error), MESSAGE_CHARS))
    return _internal_error(error, call)


def failure_headers(error: Exception) -> dict[str, str]:
    """Response headers a failure adds: ``retry-after`` (whole seconds, rounded up)
    for one with a retry hint, as HTTP clients and proxies read it."""
    if isinstance(error, InvocationFailure) and error.retry_after_ms > 0:
        return {"retry-after": str(math.ceil(error.retry_after_ms / 1000))}
    return {}


def _internal_error(error: Exception, call: Call | None) -> ConnectError:
    """``internal``, naming only the request id; what happened goes to the log."""
    request_id = call.request_id if call is not None else new_request_id()
    _log.error(
        "rpc.unhandled_error",
        method=call.method if call is not None else "",
        request_id=request_id,
        exc_info=error,
    )
    return ConnectError(Code.INTERNAL, f"internal error (request_id={request_id})")


def _invocation_error(failure: InvocationFailure, call: Call | None) -> ConnectError:
    """The failure's code, with an ``InvocationError`` detail.

    When the caller asked for logs, the guest's log lines up to the failure
    ride along in the detail, on every protocol (bounded by the log budget).
    """
    call = call or Call(method="", request_id="")
    message = clip(failure.message, MESSAGE_CHARS)
    kept = last_lines(failure.logs, ERROR_LOG_BYTES) if call.include_logs else []
    detail = runtime_pb.InvocationError(
        kind=runtime_pb.ErrorKind[failure.kind.value],
        message=message,
        extension_id=clip(call.extension_id),
        version=clip(failure.resolved_version or call.version),
        request_id=clip(call.request_id),
        metrics=metrics_message(failure.metrics) if failure.metrics else None,
        logs=log_lines(kept) if call.include_logs else [],
        logs_truncated=call.include_logs
        and (failure.logs_truncated or len(kept) < len(failure.logs)),
        retry_after_ms=failure.retry_after_ms,
    )
    return ConnectError(code_for(failure.kind), message, details=[detail])


ERROR_LOG_BYTES = 4096
"""Guest log text an error detail carries. Over gRPC the detail travels in the
trailers, and clients refuse metadata past 8-16 KB; a failure's explanation is
almost always in its last lines, so those are the ones kept."""


def last_lines(lines: list[LogLine], budget: int) -> list[LogLine]:
    """The last of ``lines`` whose messages fit in ``budget`` UTF-8 bytes (at least
    the last line, clipped)."""
    kept: list[LogLine] = []
    for line in reversed(lines):
        size = len(line.message.encode())
        if size > budget:
            if not kept:
                kept.append(LogLine(line.level, clip(line.message, max(budget // 4, 16))))
            break
        budget -= size
        kept.append(line)
    kept.reverse()
    return kept
