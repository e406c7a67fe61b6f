"""The outermost layer: every RPC is opened here, and every answer leaves through here.

connectrpc reports an unexpected exception with ``str(exc)``, which can leak
host paths or secrets, and the layers inside this one each used to turn their
own failures into wire errors. This layer opens the call's record
(``_context``), and when the call ends hands whatever failed, wherever it
failed (authentication, admission, decoding, the handler), to the one mapper
(``_errors``). It also puts the request id on every answer.

It is a *metadata* interceptor placed first, so connectrpc starts it before
anything else, even before the body is read, and ends it last. An exception
raised from ``on_end`` replaces the call's error (connectrpc's documented
contract for metadata interceptors), which is how the mapped error is answered.
"""

from __future__ import annotations

from contextvars import Token
from typing import Any

from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from app.rpc._context import Call, close_call, open_call
from app.rpc._errors import failure_headers, to_connect_error

__all__ = ["SanitizingInterceptor"]

_Opened = tuple[Token[Call], Call]


class SanitizingInterceptor:
    """Opens the call's record; answers every failure through :func:`to_connect_error`."""

    async def on_start(self, ctx: RequestContext[Any, Any]) -> _Opened:
        call = Call.start(ctx)
        return open_call(call), call

    async def on_end(
        self, opened: _Opened, ctx: RequestContext[Any, Any], error: Exception | None, /
    ) -> None:
        token, call = opened
        close_call(token)
        ctx.response_headers["x-request-id"] = call.request_id
        if error is None or isinstance(error, ConnectError):
            return
        ctx.response_headers.update(failure_headers(error))
        raise to_connect_error(error, call)
