"""Wire errors: how an :class:`InvocationFailure` looks to a Connect or gRPC client."""

from __future__ import annotations

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from app.errors import ErrorKind, InvocationFailure
from app.gen.ameide.extensions.v1 import runtime_pb

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
) -> ConnectError:
    """A ConnectError carrying an ``InvocationError`` detail clients can branch on."""
    detail = runtime_pb.InvocationError(
        kind=runtime_pb.ErrorKind[failure.kind.value],
        message=failure.message,
        extension_id=extension_id,
        version=version,
        request_id=request_id,
        metrics=metrics,
    )
    return ConnectError(code_for(failure.kind), failure.message, details=[detail])
