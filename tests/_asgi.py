"""The service in-process: the app from ``app/asgi.py`` behind ``httpx.ASGITransport``.

No socket, no server, no thread: requests go straight into the ASGI app on the
test's own event loop, so the unit lane can check routing, codecs and wire
errors in milliseconds. ``ASGITransport`` does not run the lifespan, so this
does, exactly as a server would around its first request.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from starlette.applications import Starlette

from app.asgi import create_app
from app.invocation import Invoker
from app.runtime import Runtime
from app.settings import Settings
from tests._servers import ROOT, thread_server

BASE_URL = "http://runtime.test"
EXAMPLES = ROOT / "examples" / "extensions"


def example_settings(cache_dir: Path, **overrides: object) -> Settings:
    """The embedded example extensions, auth off, no poller: what ``serve --dev`` reads."""
    values: dict[str, object] = {
        "auth_enabled": False,
        "extensions_dir": EXAMPLES,
        "module_cache_dir": cache_dir,
        "catalog_poll_interval_s": 0,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def lifespan_client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client for ``app`` between its startup and its shutdown."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client,
    ):
        yield client


@contextlib.asynccontextmanager
async def app_client(
    settings: Settings, *, invoker: Invoker | None = None, runtime: Runtime | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """``create_app(settings, ...)`` in-process, started."""
    async with lifespan_client(create_app(settings, invoker=invoker, runtime=runtime)) as client:
        yield client


@contextlib.asynccontextmanager
async def served_client(app: Starlette, how: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client for ``app`` served ``how``: ``"in-process"`` (the ASGI app, fast lane)
    or ``"uvicorn"`` (a real server on loopback, the integration lane)."""
    if how == "uvicorn":
        with thread_server(app) as url:
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                yield client
    else:
        async with lifespan_client(app) as client:
            yield client
