"""The ``WasmExtensionRuntime`` handler: wire messages in, pipeline, wire messages out."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from protobuf import Oneof

from app.auth import Authenticator, AuthError, bind
from app.errors import ErrorKind, InvocationFailure
from app.gen.ameide.extensions.v1 import runtime_pb
from app.gen.ameide.extensions.v1.runtime_connect import WasmExtensionRuntime
from app.invocation import ExecutionContext, Invocation, Invoker, Metrics, Outcome
from app.rpc._context import request_id_for
from app.rpc._errors import log_lines, to_connect_error
from app.rpc._payload import input_bytes, parse_json_output

_OutputFormat = runtime_pb.OutputFormat
_PID = str(os.getpid())  # which worker process answered, for operators and tests


def metrics_message(metrics: Metrics) -> runtime_pb.InvocationMetrics:
    """The wire form of invocation metrics."""
    return runtime_pb.InvocationMetrics(
        duration_us=metrics.duration_us,
        fuel_consumed=metrics.fuel_consumed,
        peak_memory_bytes=metrics.peak_memory_bytes,
        host_calls=metrics.host_calls,
        queue_us=metrics.queue_us,
    )


class RuntimeService(WasmExtensionRuntime):
    """Implements ``ameide.extensions.v1.WasmExtensionRuntime``."""

    def __init__(self, invoker: Invoker, authenticator: Authenticator) -> None:
        self._invoker = invoker
        self._auth = authenticator

    async def invoke_extension(
        self,
        request: runtime_pb.InvokeExtensionRequest,
        ctx: RequestContext[runtime_pb.InvokeExtensionRequest, runtime_pb.InvokeExtensionResponse],
        /,
    ) -> runtime_pb.InvokeExtensionResponse:
        request_id = request_id_for(request, ctx)
        ctx.response_headers["x-request-id"] = request_id
        ctx.response_headers["x-served-by"] = _PID
        try:
            principal = self._auth.authenticate(ctx.request_headers.get("authorization"))
            invocation = _invocation(request, ctx, request_id)
            invocation = replace(invocation, context=bind(principal, invocation.context))
            outcome = await self._invoker.invoke(invocation)
            return _response(outcome, request.output_format)
        except AuthError as refused:
            code = (
                Code.UNAUTHENTICATED
                if refused.status == "unauthenticated"
                else Code.PERMISSION_DENIED
            )
            raise ConnectError(code, refused.message) from None
        except InvocationFailure as failure:
            raise to_connect_error(
                failure,
                extension_id=request.extension_id,
                version=request.version,
                request_id=request_id,
                metrics=metrics_message(failure.metrics) if failure.metrics else None,
                include_logs=request.include_logs,
            ) from None


def _invocation(
    request: runtime_pb.InvokeExtensionRequest, ctx: RequestContext[Any, Any], request_id: str
) -> Invocation:
    if not request.extension_id:
        raise InvocationFailure(ErrorKind.INVALID_INPUT, "extension_id is required")
    timeout_ms = ctx.timeout_ms
    deadline = time.monotonic() + timeout_ms / 1000.0 if timeout_ms is not None else None
    wire = request.context
    context = (
        ExecutionContext(
            tenant_id=wire.tenant_id,
            organization_id=wire.organization_id,
            user_id=wire.user_id,
            request_id=request_id,
            caller=wire.caller,
            attributes=dict(wire.attributes),
        )
        if wire is not None
        else ExecutionContext(request_id=request_id)
    )
    return Invocation(
        context=context,
        extension_id=request.extension_id,
        version=request.version,
        input=input_bytes(request.input),
        deadline=deadline,
        include_logs=request.include_logs,
    )


def _response(outcome: Outcome, fmt: runtime_pb.OutputFormat) -> runtime_pb.InvokeExtensionResponse:
    output: Oneof[str, object]
    if fmt == _OutputFormat.BYTES:
        output = Oneof("output_bytes", outcome.output)
    else:
        value = parse_json_output(outcome.output)
        if value is not None:
            output = Oneof("output_json", value)
        elif fmt == _OutputFormat.JSON:
            raise InvocationFailure(
                ErrorKind.INVALID_OUTPUT, "the extension's output is not valid JSON"
            )
        else:
            output = Oneof("output_bytes", outcome.output)
    return runtime_pb.InvokeExtensionResponse(
        output=output,  # type: ignore[arg-type]
        resolved_version=outcome.resolved_version,
        metrics=metrics_message(outcome.metrics),
        logs=log_lines(outcome.logs),
        logs_truncated=outcome.logs_truncated,
    )
