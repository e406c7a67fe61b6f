"""Python SDK for ``ameide.extensions.v1.WasmExtensionRuntime``.

::

    from ameide_extensions_client import ExtensionsClient, ExtensionError, forward

    async with ExtensionsClient("http://extensions-runtime:8080", token=get_token) as runtime:
        result = await runtime.invoke("hello", {"name": "Ada"}, context=forward(ctx, caller="ctl"))
        result.output            # {"greeting": "Hello, Ada!"}

Failures raise an :class:`ExtensionError` subclass per ``ErrorKind``
(``ExtensionTimeout``, ``FuelExhausted``, ``Trap``, ``ExtensionNotFound``, ...)
with ``.kind``, ``.message``, ``.request_id`` and ``.code``.

The distribution is ``ameide-extensions-client`` (``clients/python`` of the
extensions-runtime repository) and needs no part of the server. The generated
stubs it is built on ship with it: ``ameide_extensions_client.gen.ameide.extensions.v1``
(``runtime_pb`` messages, ``runtime_connect`` client and service base classes).
"""

from ameide_extensions_client._client import ExtensionsClient, ExtensionsClientSync, Protocol
from ameide_extensions_client._context import (
    ORGANIZATION_HEADER,
    REQUEST_ID_HEADER,
    TENANT_HEADER,
    USER_HEADER,
    Forwarded,
    bearer_token,
    context_from_request,
    deadline_from_request,
    forward,
    remaining_ms,
)
from ameide_extensions_client._errors import (
    ErrorKind,
    ExtensionDisabled,
    ExtensionError,
    ExtensionNotFound,
    ExtensionTimeout,
    FuelExhausted,
    GuestError,
    HostCallDenied,
    HostCallFailed,
    IntegrityMismatch,
    InternalError,
    InvalidInput,
    InvalidModule,
    InvalidOutput,
    LimitExceeded,
    LogLine,
    MemoryLimit,
    Metrics,
    OutputTooLarge,
    Overloaded,
    PermissionDenied,
    StackOverflow,
    Trap,
    Unauthenticated,
    Unavailable,
    error_class,
    error_from_connect,
)
from ameide_extensions_client._result import NO_INPUT, InvocationResult, OutputFormat
from ameide_extensions_client.gen.ameide.extensions.v1.runtime_pb import ExecutionContext

__all__ = [
    "NO_INPUT",
    "ORGANIZATION_HEADER",
    "REQUEST_ID_HEADER",
    "TENANT_HEADER",
    "USER_HEADER",
    "ErrorKind",
    "ExecutionContext",
    "ExtensionDisabled",
    "ExtensionError",
    "ExtensionNotFound",
    "ExtensionTimeout",
    "ExtensionsClient",
    "ExtensionsClientSync",
    "Forwarded",
    "FuelExhausted",
    "GuestError",
    "HostCallDenied",
    "HostCallFailed",
    "IntegrityMismatch",
    "InternalError",
    "InvalidInput",
    "InvalidModule",
    "InvalidOutput",
    "InvocationResult",
    "LimitExceeded",
    "LogLine",
    "MemoryLimit",
    "Metrics",
    "OutputFormat",
    "OutputTooLarge",
    "Overloaded",
    "PermissionDenied",
    "Protocol",
    "StackOverflow",
    "Trap",
    "Unauthenticated",
    "Unavailable",
    "bearer_token",
    "context_from_request",
    "deadline_from_request",
    "error_class",
    "error_from_connect",
    "forward",
    "remaining_ms",
]
