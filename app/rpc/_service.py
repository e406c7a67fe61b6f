"""The ``WasmExtensionRuntime`` handler: wire messages in, pipeline, wire messages out."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from typing import Any

from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from ameide_extensions_client.gen.ameide.extensions.v1.runtime_connect import WasmExtensionRuntime
from connectrpc.request import RequestContext
from protobuf import Oneof

from app.auth import Authenticator, AuthError, bind
from app.controls import RateLimiter, TenantGate
from app.errors import ErrorKind, InvocationFailure
from app.invocation import ExecutionContext, Invocation, Invoker, Metrics, Outcome
from app.rpc._admission import admit_tenant, admitted, auth_error, remaining_s, set_retry_after
from app.rpc._codec import JSONTextResponse, JSONWireRequest
from app.rpc._context import request_id_for
from app.rpc._errors import log_lines, to_connect_error
from app.rpc._exact import output_text_async
from app.rpc._payload import OFF_LOOP_BYTES, input_bytes, parse_json_output_async

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

    def __init__(
        self,
        invoker: Invoker,
        authenticator: Authenticator,
        rate_limits: RateLimiter | None = None,
        gate: TenantGate | None = None,
    ) -> None:
        self._invoker = invoker
        self._auth = authenticator
        self._rate_limits = rate_limits
        self._gate = gate

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
            admission = admitted()  # set by AdmissionInterceptor before the body was read
            if admission is None:
                principal = self._auth.authenticate(ctx.request_headers.get("authorization"))
            else:
                principal = admission.principal
            invocation = _invocation(request, ctx, request_id, await _input(request, ctx))
            invocation = replace(invocation, context=bind(principal, invocation.context))
            if admission is not None and admission.rate_checked:
                outcome = await self._invoker.invoke(invocation)
            else:  # auth off: the tenant is known only now (see app/rpc/_admission.py)
                outcome = await self._admitted_invoke(invocation, remaining_s(ctx))
            return await _response(
                outcome, request.output_format, json_wire=isinstance(request, JSONWireRequest)
            )
        except AuthError as refused:
            raise auth_error(refused) from None
        except InvocationFailure as failure:
            set_retry_after(ctx, failure)
            raise to_connect_error(
                failure,
                extension_id=request.extension_id,
                version=failure.resolved_version or request.version,
                request_id=request_id,
                metrics=metrics_message(failure.metrics) if failure.metrics else None,
                include_logs=request.include_logs,
            ) from None

    async def _admitted_invoke(self, invocation: Invocation, deadline_s: float | None) -> Outcome:
        """Rate limit, turn, invoke: what the admission interceptor does with auth on."""
        tenant = invocation.context.tenant_id
        turn = await admit_tenant(self._rate_limits, self._gate, tenant, deadline_s)
        try:
            return await self._invoker.invoke(invocation)
        finally:
            if turn is not None:
                turn.release()


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
    request_id: str,
    data: bytes,
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
