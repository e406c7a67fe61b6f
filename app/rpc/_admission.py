"""Admission from headers: authenticate and rate-limit before the body is read.

connectrpc runs *metadata* interceptors placed first in the list before it
reads or decodes the request message. Decoding is the expensive part of a
request that should never have been accepted: a 3.9 MB JSON body of numbers
with no token cost 2.1 s of event-loop time to parse into a protobuf ``Value``
before the handler said 401, and two such senders held ``/healthz`` at 2 s.
So the bearer token is verified here, from the headers alone, and the
tenant's rate limit is taken right after; a refused request's body is never
read. Then the call waits for one of its tenant's turns (app/controls/gate.py),
so a flooding tenant's calls wait parked here, not as work queued on the
event loop. The verified principal is handed to the handler through a
context variable (the interceptor and the handler run in the same task),
which still binds it to the ExecutionContext the body carries.

With auth off there is no tenant before the body is decoded (the context
names it), so the handler takes the rate limit and the turn itself.
"""

from __future__ import annotations

import contextlib
import math
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from app.auth import Authenticator, AuthError, Principal
from app.controls import RateLimiter, TenantGate, Turn
from app.errors import InvocationFailure
from app.rpc._context import request_id_for
from app.rpc._errors import to_connect_error
from app.telemetry import get_logger

__all__ = [
    "AdmissionInterceptor",
    "Admitted",
    "KeyPrefetchInterceptor",
    "admit_tenant",
    "admitted",
    "auth_error",
    "remaining_s",
    "set_retry_after",
]


@dataclass(frozen=True, slots=True)
class Admitted:
    """What the interceptor established for this request."""

    principal: Principal | None
    rate_checked: bool
    turn: Turn | None = None
    """The tenant's turn this call holds (given back in ``on_end``)."""


_log = get_logger("app.rpc")

_ADMITTED: ContextVar[Admitted | None] = ContextVar("admitted", default=None)


_Started = tuple[Token[Admitted | None], Admitted]


def _started(admission: Admitted) -> _Started:
    return _ADMITTED.set(admission), admission


def admitted() -> Admitted | None:
    """This request's admission, or ``None`` when no admission interceptor ran."""
    return _ADMITTED.get()


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


def auth_error(refused: AuthError) -> ConnectError:
    """The wire form of a refused token."""
    code = Code.UNAUTHENTICATED if refused.status == "unauthenticated" else Code.PERMISSION_DENIED
    return ConnectError(code, refused.message)


def set_retry_after(ctx: RequestContext[Any, Any], failure: InvocationFailure) -> None:
    """A ``retry-after`` header (whole seconds, rounded up) for a failure with a hint."""
    if failure.retry_after_ms > 0:
        ctx.response_headers["retry-after"] = str(math.ceil(failure.retry_after_ms / 1000))


class AdmissionInterceptor:
    """A metadata interceptor (see module doc); place it first."""

    def __init__(
        self,
        authenticator: Authenticator,
        rate_limits: RateLimiter | None,
        gate: TenantGate | None = None,
    ) -> None:
        self._auth = authenticator
        self._rate_limits = rate_limits
        self._gate = gate

    async def on_start(self, ctx: RequestContext[Any, Any]) -> _Started | None:
        if not self._auth.enabled:
            return None  # the handler authenticates (a no-op) and rate-limits
        try:
            return await self._admit(ctx)
        except ConnectError:
            raise
        except Exception:  # noqa: BLE001 - runs before SanitizingInterceptor can see it
            request_id = request_id_for(None, ctx)
            _log.exception("rpc.admission_error", method=ctx.method.name, request_id=request_id)
            raise ConnectError(Code.INTERNAL, f"internal error (request_id={request_id})") from None

    async def _admit(self, ctx: RequestContext[Any, Any]) -> _Started:
        header = ctx.request_headers.get("authorization")
        try:
            await self._auth.prefetch(header)
            principal = self._auth.authenticate(header)
        except AuthError as refused:
            raise auth_error(refused) from None
        tenant = principal.tenant_id if principal is not None else ""
        if not tenant:
            return _started(Admitted(principal, rate_checked=False))
        try:
            turn = await admit_tenant(self._rate_limits, self._gate, tenant, remaining_s(ctx))
        except InvocationFailure as failure:
            set_retry_after(ctx, failure)
            request_id = request_id_for(None, ctx)
            ctx.response_headers["x-request-id"] = request_id
            raise to_connect_error(failure, request_id=request_id) from None
        return _started(Admitted(principal, rate_checked=True, turn=turn))

    async def on_end(
        self,
        started: _Started | None,
        ctx: RequestContext[Any, Any],
        error: Exception | None,
        /,
    ) -> None:
        if started is None:
            return
        token, admission = started
        if admission.turn is not None:
            admission.turn.release()
        with contextlib.suppress(ValueError):  # ended in another context: nothing to undo
            _ADMITTED.reset(token)


class KeyPrefetchInterceptor:
    """Fetches an unknown JWKS key asynchronously before a handler that verifies synchronously.

    For the admin service, whose handlers call :meth:`Authenticator.authenticate`.
    """

    def __init__(self, authenticator: Authenticator) -> None:
        self._auth = authenticator

    async def on_start(self, ctx: RequestContext[Any, Any]) -> None:
        await self._auth.prefetch(ctx.request_headers.get("authorization"))

    async def on_end(
        self, token: None, ctx: RequestContext[Any, Any], error: Exception | None, /
    ) -> None:
        return None
