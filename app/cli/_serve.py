"""``extensions-runtime serve``: the ASGI app under the chosen server, on one port.

pyvoy (Envoy) is the production default: it alone answers Connect, gRPC and
gRPC-web on one plaintext port. uvicorn has no HTTP/2, so gRPC clients are
refused; hypercorn speaks h2c but closes a connection after
``keep_alive_max_requests`` requests, which is raised here.

Settings are checked here, before any server starts: unusable auth or
host-call settings are one log line and exit status 2, never a traceback
inside a server worker.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from app.settings import DEV_EXTENSIONS_DIR, EXAMPLES_DIR, Settings, settings_env
from app.telemetry import configure_logging, get_logger

__all__ = ["register", "run", "serve"]

_log = get_logger("app.serve")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="serve the RPC on one port")
    serve.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port to bind (default 8080)")
    serve.add_argument(
        "--server",
        choices=["pyvoy", "uvicorn", "hypercorn"],
        default=None,
        help="ASGI server; pyvoy is the only one answering all four protocols",
    )
    serve.add_argument("--workers", type=int, default=None, help="processes (pyvoy only)")
    serve.add_argument(
        "--dev",
        action="store_true",
        help="embedded default: examples/extensions, relaxed auth, debug page",
    )
    serve.add_argument(
        "--reload",
        action="store_true",
        help="restart when app/ changes (Tilt's live update; never in production)",
    )
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Settle the settings, refuse unusable ones, then serve."""
    if args.reload:
        from app.cli._reload import supervise

        configure_logging()
        return supervise(_without_reload(args))
    overrides: dict[str, object] = {}
    for name in ("host", "port", "server", "workers"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.dev:
        overrides["dev"] = True  # Settings applies the dev defaults (DEV_DEFAULTS)
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if settings.extensions_dir == DEV_EXTENSIONS_DIR and not settings.s3_endpoint_url:
        from app.storage import seed_directory

        seed_directory(EXAMPLES_DIR, DEV_EXTENSIONS_DIR)
    configure_logging(settings.log_level, settings.log_format)
    from app import auth, hostcalls

    try:
        # Refused here with one clear line, not as a traceback in a server worker.
        auth.check_settings(settings)
        hostcalls.check_settings(settings)
    except ValueError as exc:
        get_logger("app.cli").error("cli.refused_settings", error=str(exc))
        return 2
    return serve(settings)


def _without_reload(args: argparse.Namespace) -> list[str]:
    """The same ``serve`` arguments for the child the reloader runs."""
    argv: list[str] = []
    for name in ("host", "port", "server", "workers"):
        if getattr(args, name) is not None:
            argv += [f"--{name}", str(getattr(args, name))]
    return [*argv, "--dev"] if args.dev else argv


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
    admin interface is unreachable (see ``app.cli._envoy``).
    """
    from app.cli._envoy import EnvoyServer, StartupError

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
            workers_yield=settings.envoy_workers_yield,
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
