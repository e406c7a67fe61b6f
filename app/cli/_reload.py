"""``serve --reload``: restart the server when the package's Python files change.

For Tilt's inner loop (the Tiltfile syncs ``app/`` into the running dev
container): a change is live in about a second without an image build. The
server runs as a child process; this parent only watches and restarts, so a
syntax error leaves the last good server stopped and the next save starts it
again. Never for production: the chart turns it on only with ``liveUpdate``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from app.telemetry import get_logger

__all__ = ["supervise"]

_log = get_logger("app.serve")
PACKAGE = Path(__file__).resolve().parent.parent
_POLL_S = 0.5
_STOP_S = 10.0


def _snapshot(root: Path) -> dict[Path, tuple[int, int]]:
    found: dict[Path, tuple[int, int]] = {}
    for path in root.rglob("*.py"):
        try:
            stat = path.stat()
        except OSError:  # removed while listing
            continue
        found[path] = (stat.st_mtime_ns, stat.st_size)
    return found


def _stop(child: subprocess.Popen[bytes]) -> int:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=_STOP_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return child.returncode


def supervise(serve_args: list[str], root: Path = PACKAGE) -> int:
    """Run ``extensions-runtime serve *serve_args`` and restart it on every change."""
    command = [sys.executable, "-m", "app", "serve", *serve_args]
    stopping: list[int] = []

    def on_signal(signum: int, _: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    seen = _snapshot(root)
    child = subprocess.Popen(command)
    _log.info("serve.reload_watching", root=str(root), files=len(seen))
    exited_logged = False
    while not stopping:
        time.sleep(_POLL_S)
        now = _snapshot(root)
        if now != seen:
            changed = sorted(str(p.relative_to(root)) for p in set(now) ^ set(seen)) + sorted(
                str(p.relative_to(root)) for p in now if p in seen and now[p] != seen[p]
            )
            seen = now
            _log.info("serve.reloading", changed=changed[:10], count=len(changed))
            _stop(child)
            child = subprocess.Popen(command)
            exited_logged = False
        elif child.poll() is not None and not exited_logged:
            _log.error("serve.child_exited", status=child.returncode, waiting_for="a change")
            exited_logged = True
    status = _stop(child)
    # Stopped by the SIGTERM passed on (uvicorn re-raises it after a clean shutdown).
    return 0 if status == -signal.SIGTERM else status
