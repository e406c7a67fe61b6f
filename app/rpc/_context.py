"""Per-request identity: the request id every log line and error carries."""

from __future__ import annotations

import uuid
from typing import Any

from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from connectrpc.request import RequestContext

from app._ids import REQUEST_ID_PATTERN, fullmatch


def request_id_for(request: object, ctx: RequestContext[Any, Any]) -> str:
    """The caller's request id when it is well formed, a fresh one otherwise.

    Ids from the caller end up in logs and headers, so anything that is not a
    short token is replaced rather than echoed.
    """
    candidates: list[str] = []
    if isinstance(request, runtime_pb.InvokeExtensionRequest) and request.context is not None:
        candidates.append(request.context.request_id)
    candidates.append(ctx.request_headers.get("x-request-id", ""))
    for candidate in candidates:
        if fullmatch(REQUEST_ID_PATTERN, candidate):
            return candidate
    return uuid.uuid4().hex
