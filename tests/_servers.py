"""Real servers for tests: the CLI in a subprocess, or an app under uvicorn in a thread."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class Lane:
    """Whether the running test may start a server. ``tests/conftest.py`` sets it per
    test from its ``integration`` mark, so a server in the fast lane fails loudly
    instead of slowing it down unnoticed; outside pytest (the benchmarks) it may."""

    servers_allowed = True


def _may_start(what: str) -> None:
    if not Lane.servers_allowed:
        raise RuntimeError(
            f"{what} in a test outside the integration lane: mark it `integration`"
            " (see tests/conftest.py), or test the app in-process (tests/_asgi.py)"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(
    url: str,
    timeout: float = 90.0,
    proc: subprocess.Popen[bytes] | None = None,
    path: str = "/readyz",
) -> None:
    """Until ``url + path`` answers 200; ``/healthz`` for a server expected not ready."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            response = httpx.get(url + path, timeout=1.0)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} not ready after {timeout}s: {last}")


@contextlib.contextmanager
def cli_server(
    server: str = "pyvoy",
    *,
    env: Mapping[str, str] | None = None,
    dev: bool = True,
    log_path: Path | None = None,
    wait_path: str = "/readyz",
) -> Iterator[str]:
    """``extensions-runtime serve`` in a subprocess; yields its base URL once
    ``wait_path`` answers 200 (``/healthz`` to test a server that is not ready)."""
    _may_start(f"`extensions-runtime serve --server {server}`")
    port = free_port()
    args = [str(BIN / "extensions-runtime"), "serve", "--server", server, "--port", str(port)]
    if dev:
        args.append("--dev")
    full_env = {**os.environ, "EXTENSIONS_RUNTIME_LOG_FORMAT": "json", **(env or {})}
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(args, env=full_env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc=proc, path=wait_path)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log_path:
            out.close()  # type: ignore[union-attr]


@contextlib.contextmanager
def thread_server(app: ASGIApp) -> Iterator[str]:
    """An ASGI app under a real uvicorn server on a loopback port, in a thread."""
    _may_start("a uvicorn server")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def _ready(_: Request) -> JSONResponse:
    return JSONResponse({"ready": True})


@contextlib.contextmanager
def route_server(*routes: BaseRoute) -> Iterator[str]:
    """A fake upstream: ``routes`` (plus ``/readyz``) under :func:`thread_server`."""
    app = Starlette(routes=[*routes, Route("/readyz", _ready, methods=["GET"])])
    with thread_server(app) as url:
        yield url
