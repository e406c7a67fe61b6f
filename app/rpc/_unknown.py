"""Answers calls to methods this server does not have, in the caller's protocol.

Without this, an unknown path gets a bare HTTP 404 that gRPC clients report
as a transport failure instead of ``unimplemented``.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["unknown_method"]

_GRPC_UNIMPLEMENTED = "12"


async def unknown_method(request: Request) -> Response:
    """``unimplemented`` for Connect, gRPC and gRPC-web alike."""
    path = request.url.path
    message = f"unknown method {path[:200]}"
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/grpc"):
        # Trailers-only response: the status travels in the headers.
        return Response(
            status_code=200,
            media_type=content_type.split(";")[0],
            headers={"grpc-status": _GRPC_UNIMPLEMENTED, "grpc-message": message},
        )
    body = json.dumps({"code": "unimplemented", "message": message})
    return Response(body, status_code=404, media_type="application/json")
