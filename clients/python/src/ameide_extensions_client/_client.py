"""``ExtensionsClient`` and ``ExtensionsClientSync``: the generated stubs, made pleasant.

Both wrap the connectrpc clients generated from ``runtime.proto``
(``WasmExtensionRuntimeClient`` / ``...ClientSync``) and add what every
controller would otherwise write itself: a bearer token (fixed or from a
provider), a request id on every call, deadline propagation, Python values in
and out, and typed exceptions (:class:`ExtensionError` subclasses) instead of
a bare ``ConnectError``.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Literal, Self

from connectrpc.client import ResponseMetadata
from connectrpc.code import Code
from connectrpc.codec import proto_json_codec
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType
from pyqwest import Client as HTTPClient
from pyqwest import HTTPTransport, HTTPVersion, SyncClient, SyncHTTPTransport

from ameide_extensions_client._context import REQUEST_ID_HEADER, Forwarded
from ameide_extensions_client._errors import ExtensionError, ExtensionTimeout, error_from_connect
from ameide_extensions_client._result import (
    NO_INPUT,
    InvocationResult,
    OutputFormat,
    build_request,
    result_from_response,
)
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from ameide_extensions_client.gen.ameide.extensions.v1.runtime_connect import (
    WasmExtensionRuntimeClient,
    WasmExtensionRuntimeClientSync,
)

Protocol = Literal["connect", "grpc", "grpc-web"]
"""Wire protocol: ``connect`` (HTTP/1.1 or 2), ``grpc`` (HTTP/2 cleartext or TLS),
``grpc-web``."""

TokenProvider = Callable[[], "str | Awaitable[str | None] | None"]
SyncTokenProvider = Callable[[], "str | None"]

_PROTOCOLS = {
    "connect": ProtocolType.CONNECT,
    "grpc": ProtocolType.GRPC,
    "grpc-web": ProtocolType.GRPC_WEB,
}


def _protocol(name: str) -> ProtocolType:
    try:
        return _PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"protocol must be one of {sorted(_PROTOCOLS)}, not {name!r}") from None


class _Call:
    """One invocation's request, headers and timeout, prepared the same way for both clients."""

    def __init__(
        self,
        extension_id: str,
        data: Any,
        *,
        context: runtime_pb.ExecutionContext | Forwarded | None,
        version: str,
        include_logs: bool,
        output_format: OutputFormat,
        timeout_ms: int | None,
        deadline: float | None,
        default_timeout_ms: int | None,
        caller: str,
        headers: Mapping[str, str] | None,
    ) -> None:
        forwarded_token: str | None = None
        if isinstance(context, Forwarded):
            forwarded_token = context.token
            if context.deadline is not None:
                deadline = context.deadline if deadline is None else min(deadline, context.deadline)
            context = context.context
        wire = runtime_pb.ExecutionContext()
        if context is not None:
            wire = runtime_pb.ExecutionContext(
                tenant_id=context.tenant_id,
                organization_id=context.organization_id,
                user_id=context.user_id,
                request_id=context.request_id,
                caller=context.caller,
                attributes=dict(context.attributes),
            )
        if not wire.request_id:
            wire.request_id = uuid.uuid4().hex
        if not wire.caller:
            wire.caller = caller
        self.extension_id = extension_id
        self.version = version
        self.request_id = wire.request_id
        self.forwarded_token = forwarded_token
        self.request = build_request(
            extension_id,
            data,
            context=wire,
            version=version,
            include_logs=include_logs,
            output_format=output_format,
        )
        self.output_format = output_format
        self.headers = {**(headers or {}), REQUEST_ID_HEADER: wire.request_id}
        self.timeout_ms = self._timeout(timeout_ms, default_timeout_ms, deadline)

    def _timeout(
        self, timeout_ms: int | None, default_ms: int | None, deadline: float | None
    ) -> int | None:
        """The smallest of the call's timeout, the client's and what is left of the deadline."""
        candidates = [t for t in (timeout_ms, default_ms) if t is not None]
        if deadline is not None:
            left = (deadline - time.monotonic()) * 1000.0
            if left <= 0:
                raise ExtensionTimeout(
                    "the caller's deadline passed before the call was made",
                    code=Code.DEADLINE_EXCEEDED,
                    request_id=self.request_id,
                    extension_id=self.extension_id,
                    version=self.version,
                )
            candidates.append(max(1, math.floor(left)))
        return min(candidates) if candidates else None

    def with_token(self, token: str | None) -> dict[str, str]:
        if token:
            return {**self.headers, "authorization": f"Bearer {token}"}
        return self.headers

    def error(self, error: ConnectError) -> Exception:
        return error_from_connect(
            error,
            extension_id=self.extension_id,
            version=self.version,
            request_id=self.request_id,
        )

    def result(
        self, response: runtime_pb.InvokeExtensionResponse, metadata: ResponseMetadata
    ) -> InvocationResult:
        try:
            return result_from_response(
                response,
                metadata.headers.get(REQUEST_ID_HEADER) or self.request_id,
                self.output_format,
            )
        except ExtensionError as error:
            error.extension_id = self.extension_id
            raise


def _reraise_cancellation(error: ConnectError) -> None:
    """connectrpc reports a cancelled call as ``ConnectError(CANCELED)``; when it is this
    task that is being cancelled (a caller gave up, a handler's deadline passed), the
    cancellation must keep propagating as ``CancelledError``, not become an error."""
    task = asyncio.current_task()
    if error.code is Code.CANCELED and task is not None and task.cancelling():
        cause = error.__cause__
        raise cause if isinstance(cause, asyncio.CancelledError) else asyncio.CancelledError()


class ExtensionsClient:
    """Async client of ``ameide.extensions.v1.WasmExtensionRuntime``.

    ``token`` is a bearer token or a function returning one (sync or async,
    called per request: hand it your token cache). A ``Forwarded`` context's
    token, then ``token=`` on the call, take precedence over it.
    ``timeout_ms`` is the default per-call timeout. ``caller`` fills
    ``ExecutionContext.caller`` when a call leaves it empty. ``json=True`` uses
    the Connect JSON codec instead of binary protobuf.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | TokenProvider | None = None,
        timeout_ms: int | None = None,
        protocol: Protocol = "connect",
        json: bool = False,
        caller: str = "",
        http_client: HTTPClient | None = None,
    ) -> None:
        proto = _protocol(protocol)
        self._transport: HTTPTransport | None = None
        if http_client is None and proto is ProtocolType.GRPC and base_url.startswith("http:"):
            # gRPC needs HTTP/2; over cleartext that means prior knowledge (h2c).
            self._transport = HTTPTransport(http_version=HTTPVersion.HTTP2)
            http_client = HTTPClient(self._transport)
        self._stub = WasmExtensionRuntimeClient(
            base_url.rstrip("/"),
            protocol=proto,
            codec=proto_json_codec() if json else None,
            http_client=http_client,
        )
        self._token = token
        self._timeout_ms = timeout_ms
        self._caller = caller

    async def _resolve_token(self, call: _Call, token: str | None) -> str | None:
        if token is not None:
            return token
        if call.forwarded_token is not None:
            return call.forwarded_token
        if self._token is None or isinstance(self._token, str):
            return self._token
        value = self._token()
        if inspect.isawaitable(value):
            value = await value
        return value

    async def invoke(
        self,
        extension_id: str,
        input: Any = NO_INPUT,
        *,
        context: runtime_pb.ExecutionContext | Forwarded | None = None,
        version: str = "",
        include_logs: bool = False,
        output_format: OutputFormat = "auto",
        timeout_ms: int | None = None,
        deadline: float | None = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> InvocationResult:
        """Run ``extension_id`` (its promoted version unless ``version``) on ``input``.

        ``input`` is ``bytes`` (handed over unchanged) or a JSON value. The
        call's timeout is the smallest of ``timeout_ms``, the client's
        default, and what is left of ``deadline`` (``time.monotonic()``) or of
        a ``Forwarded`` context's deadline. Raises an :class:`ExtensionError`
        subclass on failure.
        """
        call = _Call(
            extension_id,
            input,
            context=context,
            version=version,
            include_logs=include_logs,
            output_format=output_format,
            timeout_ms=timeout_ms,
            deadline=deadline,
            default_timeout_ms=self._timeout_ms,
            caller=self._caller,
            headers=headers,
        )
        request_headers = call.with_token(await self._resolve_token(call, token))
        try:
            with ResponseMetadata() as metadata:
                response = await self._stub.invoke_extension(
                    call.request, headers=request_headers, timeout_ms=call.timeout_ms
                )
        except ConnectError as error:
            _reraise_cancellation(error)
            raise call.error(error) from error
        return call.result(response, metadata)

    async def close(self) -> None:
        await self._stub.close()
        if self._transport is not None:
            await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class ExtensionsClientSync:
    """Blocking twin of :class:`ExtensionsClient` (same arguments, same errors)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | SyncTokenProvider | None = None,
        timeout_ms: int | None = None,
        protocol: Protocol = "connect",
        json: bool = False,
        caller: str = "",
        http_client: SyncClient | None = None,
    ) -> None:
        proto = _protocol(protocol)
        self._transport: SyncHTTPTransport | None = None
        if http_client is None and proto is ProtocolType.GRPC and base_url.startswith("http:"):
            self._transport = SyncHTTPTransport(http_version=HTTPVersion.HTTP2)
            http_client = SyncClient(self._transport)
        self._stub = WasmExtensionRuntimeClientSync(
            base_url.rstrip("/"),
            protocol=proto,
            codec=proto_json_codec() if json else None,
            http_client=http_client,
        )
        self._token = token
        self._timeout_ms = timeout_ms
        self._caller = caller

    def _resolve_token(self, call: _Call, token: str | None) -> str | None:
        if token is not None:
            return token
        if call.forwarded_token is not None:
            return call.forwarded_token
        if self._token is None or isinstance(self._token, str):
            return self._token
        return self._token()

    def invoke(
        self,
        extension_id: str,
        input: Any = NO_INPUT,
        *,
        context: runtime_pb.ExecutionContext | Forwarded | None = None,
        version: str = "",
        include_logs: bool = False,
        output_format: OutputFormat = "auto",
        timeout_ms: int | None = None,
        deadline: float | None = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> InvocationResult:
        """See :meth:`ExtensionsClient.invoke`."""
        call = _Call(
            extension_id,
            input,
            context=context,
            version=version,
            include_logs=include_logs,
            output_format=output_format,
            timeout_ms=timeout_ms,
            deadline=deadline,
            default_timeout_ms=self._timeout_ms,
            caller=self._caller,
            headers=headers,
        )
        request_headers = call.with_token(self._resolve_token(call, token))
        try:
            with ResponseMetadata() as metadata:
                response = self._stub.invoke_extension(
                    call.request, headers=request_headers, timeout_ms=call.timeout_ms
                )
        except ConnectError as error:
            raise call.error(error) from error
        return call.result(response, metadata)

    def close(self) -> None:
        self._stub.close()
        if self._transport is not None:
            self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
