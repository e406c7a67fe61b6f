"""Interceptors that keep the wire clean.

connectrpc reports an unexpected exception with ``str(exc)``, which can leak
host paths or secrets. Everything that is not a deliberate wire error becomes a
generic ``internal`` error naming the request id, and the detail goes to the log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from app.errors import InvocationFailure
from app.rpc._context import request_id_for
from app.rpc._errors import to_connect_error
from app.telemetry import get_logger

_log = get_logger("app.rpc")


class SanitizingInterceptor:
    """Turns every failure into a typed, sanitized Connect error."""

    async def intercept_unary(
        self,
        call_next: Callable[[Any, RequestContext[Any, Any]], Awaitable[Any]],
        request: Any,
        ctx: RequestContext[Any, Any],
        /,
    ) -> Any:
        try:
            return await call_next(request, ctx)
        except ConnectError:
            raise
        except InvocationFailure as failure:
            raise to_connect_error(failure, request_id=request_id_for(request, ctx)) from None
        except Exception:  # noqa: BLE001 - the one place every unexpected error is sanitized
            request_id = request_id_for(request, ctx)
            _log.exception("rpc.unhandled_error", method=ctx.method.name, request_id=request_id)
            raise ConnectError(Code.INTERNAL, f"internal error (request_id={request_id})") from None
