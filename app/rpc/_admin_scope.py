"""Authorization for the admin RPC: the caller's token must carry the admin scope.

A kill switch is not something a tenant's caller, or an anonymous one, should
be able to flip, so this layer sits behind a *required* authentication layer
(no or a bad token is ``unauthenticated`` there, as on the runtime RPC) and
refuses a verified token without the scope (``permission_denied``), before
the body is read.
"""

from __future__ import annotations

from typing import Any

from connectrpc.request import RequestContext

from app.auth import PermissionDenied
from app.rpc._context import current_call

__all__ = ["AdminScopeInterceptor"]


class AdminScopeInterceptor:
    """Lets a call through only when its principal's scopes include ``scope``."""

    def __init__(self, scope: str) -> None:
        self._scope = scope

    async def on_start(self, ctx: RequestContext[Any, Any]) -> None:
        principal = current_call().principal
        if principal is None or self._scope not in principal.scopes:
            raise PermissionDenied(f"the admin scope {self._scope} is required")

    async def on_end(
        self, token: None, ctx: RequestContext[Any, Any], error: Exception | None, /
    ) -> None:
        return None
