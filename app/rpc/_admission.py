"""Admission: the tenant's rate limit, then one of its turns, before the call costs anything.

Right after authentication, and still before the body is read, the caller's
tenant takes a rate-limit token (app/controls/_ratelimit.py) and then waits for
one of its turns (app/controls/_gate.py), so a flooding tenant's calls wait
parked here, not as work queued on the event loop, and a refused request's
body is never decoded. The turn is given back when the call ends, whatever
the outcome. A refusal is an ``OVERLOADED`` :class:`InvocationFailure` with a
retry hint, answered by the outermost layer like any other failure.

With caller auth off there is no tenant before the body is decoded (the
ExecutionContext names it), so :class:`BodyAdmissionInterceptor` does the same
once the message is there, as a message interceptor around the handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from connectrpc.request import RequestContext

from app.controls import RateLimiter, TenantGate, Turn
from app.rpc._context import current_call

__all__ = ["AdmissionInterceptor", "BodyAdmissionInterceptor", "admit_tenant", "remaining_s"]


def remaining_s(ctx: RequestContext[Any, Any]) -> float | None:
    """What is left of the caller's deadline, in seconds (``None``: no deadline)."""
    remaining = ctx.timeout_ms
    return None if remaining is None else max(0.0, remaining / 1000)


async def admit_tenant(
    rate_limits: RateLimiter | None, gate: TenantGate | None, tenant: str, deadline_s: float | None
) -> Turn | None:
    """The tenant's rate limit, then one of its turns (release it when the call ends)."""
    if rate_limits is not None:
        await rate_limits.admit(tenant, deadline_s)
    return await gate.enter(tenant, deadline_s) if gate is not None else None


class AdmissionInterceptor:
    """Admits the authenticated principal's tenant from headers (a metadata interceptor).

    A principal without a tenant is not admitted here: binding it to the
    ExecutionContext refuses it before anything runs.
    """

    def __init__(self, rate_limits: RateLimiter | None, gate: TenantGate | None = None) -> None:
        self._rate_limits = rate_limits
        self._gate = gate

    async def on_start(self, ctx: RequestContext[Any, Any]) -> Turn | None:
        principal = current_call().principal
        if principal is None or not principal.tenant_id:
            return None
        return await admit_tenant(
            self._rate_limits, self._gate, principal.tenant_id, remaining_s(ctx)
        )

    async def on_end(
        self, turn: Turn | None, ctx: RequestContext[Any, Any], error: Exception | None, /
    ) -> None:
        if turn is not None:
            turn.release()


class BodyAdmissionInterceptor:
    """Admits the tenant the request's context names (caller auth off; see module doc)."""

    def __init__(self, rate_limits: RateLimiter | None, gate: TenantGate | None = None) -> None:
        self._rate_limits = rate_limits
        self._gate = gate

    async def intercept_unary(
        self,
        call_next: Callable[[Any, RequestContext[Any, Any]], Awaitable[Any]],
        request: Any,
        ctx: RequestContext[Any, Any],
        /,
    ) -> Any:
        current_call().learn(request)  # a refusal names the extension, as the handler's errors do
        tenant = ""
        if isinstance(request, runtime_pb.InvokeExtensionRequest) and request.context is not None:
            tenant = request.context.tenant_id
        turn = await admit_tenant(self._rate_limits, self._gate, tenant, remaining_s(ctx))
        try:
            return await call_next(request, ctx)
        finally:
            if turn is not None:
                turn.release()
