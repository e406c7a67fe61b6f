"""Application factory: one Starlette app, one port, every protocol.

The generated Connect application is mounted at the service path next to the
health routes; Connect, gRPC and gRPC-web requests all reach the same handler.
Servers that import the app by name (pyvoy runs it inside Envoy) use the
lazily built module attribute ``application``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from app.gen.ameide.extensions.v1.runtime_connect import (
    WasmExtensionRuntime,
    WasmExtensionRuntimeASGIApplication,
)
from app.invocation import EchoInvoker, Invoker
from app.rpc import RuntimeService, SanitizingInterceptor, unknown_method
from app.settings import Settings, get_settings
from app.telemetry import configure_logging, get_logger

_log = get_logger("app.asgi")


class _Readiness:
    """Whether this process should receive traffic, and why not."""

    def __init__(self) -> None:
        self.ready = False
        self.reasons: list[str] = ["starting"]


def create_app(settings: Settings | None = None, *, invoker: Invoker | None = None) -> Starlette:
    """Build the ASGI application for ``settings`` (read from the environment if omitted)."""
    settings = settings or get_settings()
    readiness = _Readiness()
    service = RuntimeService(invoker or EchoInvoker())
    connect_app = WasmExtensionRuntimeASGIApplication(
        service,
        interceptors=[SanitizingInterceptor()],
        read_max_bytes=settings.read_max_bytes,
    )

    async def healthz(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> JSONResponse:
        if readiness.ready:
            return JSONResponse({"ready": True})
        return JSONResponse({"ready": False, "reasons": readiness.reasons}, status_code=503)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        readiness.ready, readiness.reasons = True, []
        _log.info("runtime.started", server=settings.server, dev=settings.dev)
        try:
            yield
        finally:
            readiness.ready, readiness.reasons = False, ["stopping"]

    desc = WasmExtensionRuntime.desc()
    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            *(
                Route(f"/{desc.type_name}/{method.name}", connect_app, methods=["POST", "GET"])
                for method in desc.methods
            ),
            Route("/{path:path}", unknown_method, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


_application: Starlette | None = None


def __getattr__(name: str) -> Any:
    """Build ``application`` on first access, from the environment's settings."""
    global _application  # noqa: PLW0603
    if name != "application":
        raise AttributeError(name)
    if _application is None:
        settings = get_settings()
        configure_logging(settings.log_level, settings.log_format)
        _application = create_app(settings)
    return _application
