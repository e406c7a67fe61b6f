"""The ``WasmExtensionRuntime`` handler: wire messages in, pipeline, wire messages out."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from ameide_extensions_client.gen.ameide.extensions.v1.runtime_connect import WasmExtensionRuntime
from connectrpc.request import RequestContext
from protobuf import Oneof

from app.auth import bind
from app.errors import ErrorKind, InvocationFailure
from app.invocation import ExecutionContext, Invocation, Invoker, Outcome
from app.rpc._codec import JSONTextResponse, JSONWireRequest
from app.rpc._context import Call, current_call
from app.rpc._exact import output_text_async
from app.rpc._messages import log_lines, metrics_message
from app.rpc._payload import OFF_LOOP_BYTES, input_bytes, parse_json_output_async

__all__ = ["RuntimeService"]

_OutputFormat = runtime_pb.OutputFormat
_PID = str(os.getpid())  # which worker process answered, for operators and tests


class RuntimeService(WasmExtensionRuntime):
    """Implements ``ameide.extensions.v1.WasmExtensionRuntime``.

    Only the invocation itself: the caller was authenticated and admitted by
    the layers around it (``_layers``), and whatever it raises is answered by
    the outermost one.
    """

    def __init__(self, invoker: Invoker) -> None:
        self._invoker = invoker

    async def invoke_extension(
        self,
        request: runtime_pb.InvokeExtensionRequest,
        ctx: RequestContext[runtime_pb.InvokeExtensionRequest, runtime_pb.InvokeExtensionResponse],
        /,
    ) -> runtime_pb.InvokeExtensionResponse:
        call = current_call()
        call.learn(request)
        ctx.response_headers["x-served-by"] = _PID
        data = await _input(request, ctx)
        outcome = await self._invoker.invoke(_invocation(request, ctx, call, data))
        return await _response(
            outcome, request.output_format, json_wire=isinstance(request, JSONWireRequest)
        )


async def _input(
    request: runtime_pb.InvokeExtensionRequest, ctx: RequestContext[Any, Any]
) -> bytes:
    """The guest's input bytes; converted on a worker thread when the body was large."""
    length = ctx.request_headers.get("content-length", "")
    if (
        request.input is not None
        and request.input.field == "input_json"
        and length.isdigit()
        and len(length) < 12
        and int(length) > OFF_LOOP_BYTES
    ):
        return await asyncio.to_thread(input_bytes, request.input)
    return input_bytes(request.input)


def _invocation(
    request: runtime_pb.InvokeExtensionRequest,
    ctx: RequestContext[Any, Any],
    call: Call,
    data: bytes,
) -> Invocation:
    """The call as the pipeline takes it, its context bound to the caller's token."""
    if not request.extension_id:
        raise InvocationFailure(ErrorKind.INVALID_INPUT, "extension_id is required")
    timeout_ms = ctx.timeout_ms
    deadline = time.monotonic() + timeout_ms / 1000.0 if timeout_ms is not None else None
    wire = request.context
    request_id = call.request_id
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
        context=bind(call.principal, context),
        extension_id=request.extension_id,
        version=request.version,
        input=data,
        deadline=deadline,
        include_logs=request.include_logs,
    )


async def _response(
    outcome: Outcome, fmt: runtime_pb.OutputFormat, *, json_wire: bool
) -> runtime_pb.InvokeExtensionResponse:
    """The answer; to a JSON-codec caller, JSON output goes as the guest's own text."""
    output: Oneof[str, object] | None = None
    response = runtime_pb.InvokeExtensionResponse
    if fmt == _OutputFormat.BYTES:
        output = Oneof("output_bytes", outcome.output)
    elif json_wire:  # exact: see app/rpc/_exact.py
        text = await output_text_async(outcome.output)
        if text is not None:
            output, response = Oneof("output_bytes", text), JSONTextResponse
    else:
        value = await parse_json_output_async(outcome.output)
        if value is not None:
            output = Oneof("output_json", value)
    if output is None:  # not JSON
        if fmt == _OutputFormat.JSON:
            message = "the extension's output is not valid JSON"
            if outcome.memory_refused_bytes:
                # The guest was refused memory and carried on with what it had.
                raise InvocationFailure(
                    ErrorKind.MEMORY_LIMIT,
                    f"memory of {outcome.memory_refused_bytes} bytes refused; then: {message}",
                    outcome.metrics,
                )
            raise InvocationFailure(ErrorKind.INVALID_OUTPUT, message)
        output = Oneof("output_bytes", outcome.output)
    return response(
        output=output,  # type: ignore[arg-type]
        resolved_version=outcome.resolved_version,
        metrics=metrics_message(outcome.metrics),
        logs=log_lines(outcome.logs),
        logs_truncated=outcome.logs_truncated,
    )
