"""One RPC's record: what its layers have learned about it, and its request id.

The layers of a call (``_layers``) are separate interceptors that connectrpc
runs in turn, some before the body is read. They hand what they learn to the
ones inside them through this record: the outermost layer opens it, the
authentication layer writes the principal, the handler the extension it was
asked for; and the outermost layer reads it back when it answers, so an error
names the request and the extension without every layer passing them along.

It travels in a context variable because connectrpc gives interceptors and
the handler nothing else in common but the ``RequestContext``, and they all
run in the request's own task.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from connectrpc.request import RequestContext

from app._ids import REQUEST_ID_PATTERN, fullmatch, new_request_id
from app.auth import Principal

__all__ = ["Call", "close_call", "current_call", "open_call"]


@dataclass(slots=True)
class Call:
    """What is known about one RPC so far."""

    method: str
    request_id: str
    """The caller's id when well formed (the body's wins over the header's), else a fresh one."""
    principal: Principal | None = None
    """Who the token says the caller is; ``None`` with caller auth off."""
    extension_id: str = ""
    version: str = ""
    include_logs: bool = False

    @classmethod
    def start(cls, ctx: RequestContext[Any, Any]) -> Call:
        """The record of a call whose body is not read yet: the header's request id, if any."""
        header = ctx.request_headers.get("x-request-id", "")
        request_id = header if fullmatch(REQUEST_ID_PATTERN, header) else new_request_id()
        return cls(method=ctx.method.name, request_id=request_id)

    def learn(self, request: object) -> None:
        """What the decoded request says: the extension asked for and the caller's request id.

        Ids from the caller end up in logs and headers, so one that is not a
        short token is ignored rather than echoed.
        """
        if not isinstance(request, runtime_pb.InvokeExtensionRequest):
            return
        self.extension_id = request.extension_id
        self.version = request.version
        self.include_logs = request.include_logs
        if request.context is not None and fullmatch(
            REQUEST_ID_PATTERN, request.context.request_id
        ):
            self.request_id = request.context.request_id


_CALL: ContextVar[Call] = ContextVar("rpc_call")


def open_call(call: Call) -> Token[Call]:
    """Make ``call`` this request's record (for the outermost layer)."""
    return _CALL.set(call)


def close_call(token: Token[Call]) -> None:
    """Forget the record; a no-op when the call ended in another context."""
    with contextlib.suppress(ValueError):
        _CALL.reset(token)


def current_call() -> Call:
    """This request's record. ``LookupError`` outside one: the layers were not assembled."""
    return _CALL.get()
