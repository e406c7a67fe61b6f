"""Application factory: one Starlette app, one port, every protocol.

The generated Connect application answers at its method paths next to the
health routes and the promotion webhook; Connect, gRPC and gRPC-web requests
all reach the same handler. Servers that import the app by name (pyvoy runs
it inside Envoy) use the lazily built module attribute ``application``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from typing import Any

from ameide_extensions_client.gen.ameide.extensions.v1.runtime_connect import WasmExtensionRuntime
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from app.auth import Authenticator
from app.catalog import promotion_route
from app.debug import add_cors, console_routes
from app.gen.ameide.extensions.v1.admin_connect import ExtensionRuntimeAdmin
from app.hostcalls import JWKS_PATH
from app.invocation import EchoInvoker, Invoker
from app.rpc import AfterBodyWaits, admin_app, runtime_app, unknown_method
from app.runtime import Runtime
from app.settings import Settings, get_settings
from app.telemetry import configure_logging, configure_tracing, exposition, get_logger

_log = get_logger("app.asgi")


def create_app(
    settings: Settings | None = None,
    *,
    invoker: Invoker | None = None,
    runtime: Runtime | None = None,
) -> Starlette:
    """Build the ASGI application.

    With neither ``invoker`` nor ``runtime`` the production :class:`Runtime` is
    built from ``settings``; tests and the benchmark's protocol floor pass an
    invoker of their own.
    """
    settings = settings or get_settings()
    if invoker is None and runtime is None and settings.protocol_floor:
        invoker = EchoInvoker()
    if runtime is None and invoker is None:
        runtime = Runtime(settings)
    authenticator = Authenticator(settings)
    # Each RPC's layers (sanitize, authenticate, admission or admin scope) are
    # assembled in app/rpc/_layers.py.
    invoke_app = runtime_app(
        invoker or runtime,  # type: ignore[arg-type]
        authenticator,
        read_max_bytes=settings.read_max_bytes,
        rate_limits=runtime.rate_limits if runtime is not None else None,
        gate=runtime.gate if runtime is not None else None,
    )
    rpc_routes = _connect_routes(WasmExtensionRuntime.desc(), invoke_app)
    if runtime is not None:
        operators_app = admin_app(runtime, authenticator, settings.admin_scope)
        rpc_routes += _connect_routes(ExtensionRuntimeAdmin.desc(), operators_app)
    state = {"started": False}

    async def metrics(_: Request) -> Response:
        if runtime is None:
            return PlainTextResponse("", media_type=CONTENT_TYPE_LATEST)
        return Response(
            exposition(runtime.registry),
            media_type=CONTENT_TYPE_LATEST,
            headers={"x-served-by": str(os.getpid())},
        )

    async def healthz(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> JSONResponse:
        reasons = [] if state["started"] else ["not started"]
        if runtime is not None:
            reasons += runtime.readiness()
        if not reasons:
            return JSONResponse({"ready": True, "pid": os.getpid()})
        return JSONResponse(
            {"ready": False, "reasons": reasons, "pid": os.getpid()}, status_code=503
        )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with runtime if runtime is not None else nullcontext():
            state["started"] = True
            _log.info("runtime.started", server=settings.server, dev=settings.dev)
            try:
                yield
            finally:
                state["started"] = False

    return _browsers(
        Starlette(
            routes=[
                Route("/healthz", healthz, methods=["GET"]),
                Route("/readyz", readyz, methods=["GET"]),
                Route("/metrics", metrics, methods=["GET"]),
                _jwks_route(runtime, settings),
                promotion_route(runtime, settings),
                *rpc_routes,
                *(console_routes(runtime, authenticator) if settings.debug_console else []),
                Route("/{path:path}", unknown_method, methods=["POST"]),
                Route("/{path:path}", _not_found, methods=["GET", "HEAD"]),
            ],
            lifespan=lifespan,
        ),
        settings,
    )


def _jwks_route(runtime: Runtime | None, settings: Settings) -> Route:
    """The public keys that verify host-call tokens, for platform services (no auth: public)."""
    cache = f"public, max-age={settings.hostcall_jwks_max_age_s}"

    async def hostcall_jwks(_: Request) -> JSONResponse:
        document = runtime.host_bridge.signer.jwks() if runtime is not None else {"keys": []}
        return JSONResponse(document, headers={"Cache-Control": cache})

    return Route(JWKS_PATH, hostcall_jwks, methods=["GET"])


async def _not_found(_: Request) -> JSONResponse:
    """Unknown pages are 404, not 405 from the POST catch-all (e.g. /debug when it is off)."""
    return JSONResponse({"error": "not found"}, status_code=404)


def _browsers(app: Starlette, settings: Settings) -> Starlette:
    """Tracing, then CORS outermost so preflights are answered before anything else."""
    app = _instrument(app, settings)
    add_cors(app, settings)
    return app


def _instrument(app: Starlette, settings: Settings) -> Starlette:
    """A server span per HTTP request when traces are exported; invocation spans nest in it."""
    if settings.tracing_enabled and settings.otlp_endpoint:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        app.add_middleware(OpenTelemetryMiddleware)
    return app


def _connect_routes(desc: Any, app: Any) -> list[Route]:
    """Exact method paths only, so unknown methods reach ``unknown_method``."""
    patient = AfterBodyWaits(app)
    return [
        Route(f"/{desc.type_name}/{method.name}", patient, methods=["POST", "GET"])
        for method in desc.methods
    ]


_application: Starlette | None = None


def __getattr__(name: str) -> Any:
    """Build ``application`` on first access, from the environment's settings."""
    global _application  # noqa: PLW0603
    if name != "application":
        raise AttributeError(name)
    if _application is None:
        settings = get_settings()
        configure_logging(settings.log_level, settings.log_format)
        configure_tracing(settings)
        _application = create_app(settings)
    return _application
