"""CORS for browser callers (``cors_allowed_origins``; empty: no CORS at all).

Allows what Connect and gRPC-web clients send and exposes what they must read:
gRPC-web puts the status of a failed call in ``Grpc-Status``/``Grpc-Message``
(and the typed ``InvocationError`` in ``Grpc-Status-Details-Bin``) headers,
which a browser hides from scripts unless they are exposed.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware

from app.settings import Settings

CORS_ALLOW_HEADERS = (
    "Content-Type",
    "Connect-Protocol-Version",
    "Connect-Timeout-Ms",
    "Connect-Accept-Encoding",
    "Connect-Content-Encoding",
    "Grpc-Timeout",
    "Grpc-Accept-Encoding",
    "Grpc-Encoding",
    "X-Grpc-Web",
    "X-User-Agent",
    "Authorization",
    "X-Request-Id",
    "X-Ameide-Tenant-Id",
    "X-Ameide-Organization-Id",
    "X-Ameide-User-Id",
)
CORS_EXPOSE_HEADERS = (
    "Grpc-Status",
    "Grpc-Message",
    "Grpc-Status-Details-Bin",
    "Grpc-Encoding",
    "Grpc-Accept-Encoding",
    "Connect-Content-Encoding",
    "Connect-Accept-Encoding",
    "X-Request-Id",
    "X-Served-By",
)


def add_cors(app: Starlette, settings: Settings) -> None:
    """Answer preflights and add CORS headers for ``settings.cors_allowed_origins``."""
    origins = list(settings.cors_allowed_origins)
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST"],
        allow_headers=list(CORS_ALLOW_HEADERS),
        expose_headers=list(CORS_EXPOSE_HEADERS),
        allow_credentials=False,
        max_age=3600,
    )
