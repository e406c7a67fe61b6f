"""Wire errors: how an :class:`InvocationFailure` looks to a Connect or gRPC client."""

from __future__ import annotations

from collections.abc import Iterable

from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from app.errors import ErrorKind, InvocationFailure
from app.invocation import LogLine

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
}


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


def to_connect_error(
    failure: InvocationFailure,
    *,
    extension_id: str = "",
    version: str = "",
    request_id: str = "",
    metrics: runtime_pb.InvocationMetrics | None = None,
    include_logs: bool = False,
) -> ConnectError:
    """A ConnectError carrying an ``InvocationError`` detail clients can branch on.

    With ``include_logs`` the guest's log lines up to the failure ride along in
    the detail, on every protocol (bounded by the log budget). This is the one
    place an invocation's failure reaches the wire, so every string that may
    hold caller input is bounded here (see :func:`clip`).
    """
    message = clip(failure.message, MESSAGE_CHARS)
    kept = last_lines(failure.logs, ERROR_LOG_BYTES) if include_logs else []
    detail = runtime_pb.InvocationError(
        kind=runtime_pb.ErrorKind[failure.kind.value],
        message=message,
        extension_id=clip(extension_id),
        version=clip(version),
        request_id=clip(request_id),
        metrics=metrics,
        logs=log_lines(kept) if include_logs else [],
        logs_truncated=include_logs and (failure.logs_truncated or len(kept) < len(failure.logs)),
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


def log_lines(lines: Iterable[LogLine]) -> list[runtime_pb.LogLine]:
    """Guest log lines in their wire form."""
    return [
        runtime_pb.LogLine(level=runtime_pb.LogLevel(line.level), message=line.message)
        for line in lines
    ]
