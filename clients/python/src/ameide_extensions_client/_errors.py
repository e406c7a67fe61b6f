"""Typed errors: the ``InvocationError`` detail of a failed call as a Python exception.

Every failure the runtime reports carries an ``ameide.extensions.v1.InvocationError``
detail with a stable ``kind``; :func:`error_from_connect` picks the exception
class for that kind. Failures without the detail (a client-side deadline, a
refused token, a dead connection) are classified by their Connect code so
callers can still branch on one hierarchy.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb

ErrorKind = runtime_pb.ErrorKind
"""``ameide.extensions.v1.ErrorKind`` (an ``IntEnum``: ``ErrorKind.TIMEOUT``, ...)."""

_DETAIL_TYPE = "ameide.extensions.v1.InvocationError"


@dataclass(frozen=True, slots=True)
class LogLine:
    """One guest log line; ``level`` is ``debug``, ``info``, ``warn``, ``error`` or ``""``."""

    level: str
    message: str

    @classmethod
    def from_messages(cls, lines: list[runtime_pb.LogLine]) -> tuple[LogLine, ...]:
        return tuple(
            cls(
                level=""
                if line.level == runtime_pb.LogLevel.UNSPECIFIED
                else line.level.name.lower(),
                message=line.message,
            )
            for line in lines
        )


@dataclass(frozen=True, slots=True)
class Metrics:
    """What one invocation cost (``InvocationMetrics``)."""

    duration_us: int = 0
    fuel_consumed: int = 0
    peak_memory_bytes: int = 0
    host_calls: int = 0
    queue_us: int = 0

    @classmethod
    def from_message(cls, message: runtime_pb.InvocationMetrics | None) -> Metrics:
        if message is None:
            return cls()
        return cls(
            duration_us=message.duration_us,
            fuel_consumed=message.fuel_consumed,
            peak_memory_bytes=message.peak_memory_bytes,
            host_calls=message.host_calls,
            queue_us=message.queue_us,
        )


class ExtensionError(Exception):
    """A failed invocation. Branch on the subclass or on ``kind``, never on ``message``.

    ``kind`` is ``ErrorKind.UNSPECIFIED`` only for failures the runtime did not
    classify (authentication, an unexpected transport error); ``code`` is the
    Connect/gRPC code in every case.
    """

    kind: ErrorKind = ErrorKind.UNSPECIFIED
    retryable: bool = False
    """True when the same call may succeed later (capacity, an open breaker, a dependency)."""

    def __init__(
        self,
        message: str,
        *,
        code: Code = Code.UNKNOWN,
        kind: ErrorKind | None = None,
        request_id: str = "",
        extension_id: str = "",
        version: str = "",
        metrics: Metrics | None = None,
        logs: tuple[LogLine, ...] = (),
        logs_truncated: bool = False,
        retry_after_ms: int = 0,
    ) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind
        self.message = message
        self.code = code
        self.request_id = request_id
        self.extension_id = extension_id
        self.version = version
        self.metrics = metrics
        self.logs = logs
        """The guest's log lines up to the failure, when the call asked for logs."""
        self.logs_truncated = logs_truncated
        self.retry_after_ms = retry_after_ms
        """For ``Overloaded``: how long the runtime suggests waiting before a retry (0: no hint)."""

    def __str__(self) -> str:
        where = f" request_id={self.request_id}" if self.request_id else ""
        return f"{self.kind.name}: {self.message} ({self.code.value}{where})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(kind={self.kind.name}, message={self.message!r}, "
            f"request_id={self.request_id!r})"
        )


class LimitExceeded(ExtensionError):
    """The guest hit one of its limits (time, fuel, memory, stack, output)."""


class ExtensionTimeout(LimitExceeded):
    """TIMEOUT: the deadline (the caller's or the extension's) passed."""

    kind = ErrorKind.TIMEOUT


class FuelExhausted(LimitExceeded):
    """FUEL_EXHAUSTED: the compute budget ran out."""

    kind = ErrorKind.FUEL_EXHAUSTED


class MemoryLimit(LimitExceeded):
    """MEMORY_LIMIT: linear memory past the limit (or a module declaring too much)."""

    kind = ErrorKind.MEMORY_LIMIT


class StackOverflow(LimitExceeded):
    """STACK_OVERFLOW: the wasm stack ran out."""

    kind = ErrorKind.STACK_OVERFLOW


class OutputTooLarge(LimitExceeded):
    """OUTPUT_TOO_LARGE: the output exceeded the output limit."""

    kind = ErrorKind.OUTPUT_TOO_LARGE


class Trap(ExtensionError):
    """TRAP: the guest trapped or exited with a non-zero status."""

    kind = ErrorKind.TRAP


class HostCallDenied(ExtensionError):
    """HOST_CALL_DENIED: a host call was not allowed."""

    kind = ErrorKind.HOST_CALL_DENIED


class HostCallFailed(ExtensionError):
    """HOST_CALL_FAILED: a host call failed upstream."""

    kind = ErrorKind.HOST_CALL_FAILED
    retryable = True


class ExtensionDisabled(ExtensionError):
    """EXTENSION_DISABLED: a kill switch covers the extension, version, tenant or tier."""

    kind = ErrorKind.EXTENSION_DISABLED


class ExtensionNotFound(ExtensionError):
    """NOT_FOUND: no such extension, or no such (or no promoted) version."""

    kind = ErrorKind.NOT_FOUND


class IntegrityMismatch(ExtensionError):
    """INTEGRITY_MISMATCH: the stored module does not match its recorded sha256."""

    kind = ErrorKind.INTEGRITY_MISMATCH


class InvalidModule(ExtensionError):
    """INVALID_MODULE: not valid wasm, a wrong ABI, or a forbidden import."""

    kind = ErrorKind.INVALID_MODULE


class Overloaded(ExtensionError):
    """OVERLOADED: the runtime is at capacity; retry later, with backoff."""

    kind = ErrorKind.OVERLOADED
    retryable = True


class InvalidInput(ExtensionError):
    """INVALID_INPUT: the request is malformed."""

    kind = ErrorKind.INVALID_INPUT


class InvalidOutput(ExtensionError):
    """INVALID_OUTPUT: the output is not what the caller asked for (e.g. not JSON)."""

    kind = ErrorKind.INVALID_OUTPUT


class Unavailable(ExtensionError):
    """UNAVAILABLE: storage, an open circuit breaker, or the runtime itself; retry later."""

    kind = ErrorKind.UNAVAILABLE
    retryable = True


class InternalError(ExtensionError):
    """INTERNAL: something unexpected failed inside the runtime (see its log by request id)."""

    kind = ErrorKind.INTERNAL


class GuestError(ExtensionError):
    """GUEST_ERROR: the extension answered with its own error (a component's
    ``guest-error``); the message is ``"code: message"``. Retrying the same
    input gives the same answer."""

    kind = ErrorKind.GUEST_ERROR


class Unauthenticated(ExtensionError):
    """No caller token, or one the runtime does not accept (``unauthenticated``)."""


class PermissionDenied(ExtensionError):
    """The token does not allow this call, e.g. a context naming another tenant."""


_BY_KIND: dict[ErrorKind, type[ExtensionError]] = {
    cls.kind: cls
    for cls in (
        ExtensionTimeout,
        FuelExhausted,
        MemoryLimit,
        StackOverflow,
        OutputTooLarge,
        Trap,
        HostCallDenied,
        HostCallFailed,
        ExtensionDisabled,
        ExtensionNotFound,
        IntegrityMismatch,
        InvalidModule,
        Overloaded,
        InvalidInput,
        InvalidOutput,
        Unavailable,
        InternalError,
        GuestError,
    )
}

# Errors that carry no InvocationError detail: the client's own deadline, the
# transport, authentication, a request the server could not decode.
_BY_CODE: dict[Code, type[ExtensionError]] = {
    Code.DEADLINE_EXCEEDED: ExtensionTimeout,
    Code.UNAVAILABLE: Unavailable,
    Code.UNAUTHENTICATED: Unauthenticated,
    Code.PERMISSION_DENIED: PermissionDenied,
    Code.INVALID_ARGUMENT: InvalidInput,
    Code.INTERNAL: InternalError,
}


def error_class(kind: ErrorKind) -> type[ExtensionError]:
    """The exception class raised for ``kind``."""
    return _BY_KIND.get(kind, ExtensionError)


def invocation_error_detail(error: ConnectError) -> runtime_pb.InvocationError | None:
    """The ``InvocationError`` detail of a Connect error, if it has one."""
    for detail in error.details:
        if detail.type_name != _DETAIL_TYPE:
            continue
        value = detail.value(runtime_pb.InvocationError)
        if isinstance(value, runtime_pb.InvocationError):
            return value
    return None


def error_from_connect(
    error: ConnectError, *, extension_id: str = "", version: str = "", request_id: str = ""
) -> ExtensionError:
    """The typed exception for a Connect error from the runtime.

    ``extension_id``, ``version`` and ``request_id`` fill in what the error
    itself does not say (a client-side deadline has no detail at all).
    """
    detail = invocation_error_detail(error)
    if detail is not None and detail.kind != ErrorKind.UNSPECIFIED:
        return error_class(detail.kind)(
            detail.message or error.message,
            code=error.code,
            request_id=detail.request_id or request_id,
            extension_id=detail.extension_id or extension_id,
            version=detail.version or version,
            metrics=Metrics.from_message(detail.metrics) if detail.metrics else None,
            logs=LogLine.from_messages(detail.logs),
            logs_truncated=detail.logs_truncated,
            retry_after_ms=detail.retry_after_ms,
        )
    cls = _BY_CODE.get(error.code, ExtensionError)
    return cls(
        error.message,
        code=error.code,
        request_id=request_id,
        extension_id=extension_id,
        version=version,
    )
