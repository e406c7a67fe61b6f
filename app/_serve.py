"""Runs the ASGI app under the chosen server on one port.

pyvoy (Envoy) is the production default: it alone answers Connect, gRPC and
gRPC-web on one plaintext port. uvicorn has no HTTP/2, so gRPC clients are
refused; hypercorn speaks h2c but closes a connection after
``keep_alive_max_requests`` requests, which is raised here.
"""

from __future__ import annotations

import asyncio
import signal

from app.settings import Settings, settings_env
from app.telemetry import get_logger

_log = get_logger("app.serve")


def serve(settings: Settings) -> int:
    """Serve until interrupted; returns the process exit status."""
    if settings.server == "pyvoy":
        return asyncio.run(_serve_pyvoy(settings))
    from app.asgi import create_app

    app = create_app(settings)
    if settings.server == "uvicorn":
        import uvicorn

        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_config=None,
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=10,
            )
        )
        server.run()
        return 0
    return asyncio.run(_serve_hypercorn(settings, app))


async def _serve_hypercorn(settings: Settings, app: object) -> int:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.keep_alive_max_requests = 2**31
    config.accesslog = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    return 0


async def _serve_pyvoy(settings: Settings) -> int:
    """One Envoy process per worker; they share the port through SO_REUSEPORT.

    Each worker is a separate Python interpreter with its own event loop and
    sandbox pool (small wasm calls are GIL-bound, so processes, not threads,
    scale them); the precompiled-module directory is shared on disk. Envoy's
    admin interface is unreachable (see ``app._envoy``).
    """
    from app._envoy import EnvoyServer, StartupError

    if settings.workers > 1 and settings.port == 0:
        _log.error("serve.workers_need_a_port", workers=settings.workers)
        return 2
    servers = [
        EnvoyServer(
            "app.asgi:application",
            address=settings.host,
            port=settings.port,
            lifespan=True,
            env=settings_env(settings),
        )
        for _ in range(settings.workers)
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started: list[EnvoyServer] = []
    try:
        for server in servers:
            await server.start()
            started.append(server)
        _log.info(
            "serve.listening",
            server="pyvoy",
            address=started[0].listener_address,
            port=started[0].listener_port,
            workers=len(started),
        )
        waiters = [asyncio.ensure_future(server.wait()) for server in started]
        stopper = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({*waiters, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        if stopper not in done:
            stopper.cancel()
            _log.error("serve.envoy_exited")
            return 1
        return 0
    except StartupError:
        _log.error("serve.startup_failed", server="pyvoy")
        return 1
    finally:
        await asyncio.gather(*(server.stop() for server in started), return_exceptions=True)
