"""``serve --reload`` restarts the server when a watched Python file changes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests._servers import ROOT, free_port, wait_ready

pytestmark = pytest.mark.integration


def _pid(url: str) -> int:
    return int(httpx.get(url + "/readyz", timeout=2).json()["pid"])


def test_a_change_restarts_the_server_and_a_signal_stops_both(tmp_path: Path) -> None:
    watched = tmp_path / "pkg"
    watched.mkdir()
    (watched / "module.py").write_text("X = 1\n")
    port = free_port()
    # The reloader over a scratch folder, so the test never edits app/ itself.
    code = (
        "import sys; from pathlib import Path; from app.cli._reload import supervise;"
        f" sys.exit(supervise(['--server', 'uvicorn', '--port', '{port}', '--dev'],"
        f" root=Path({str(watched)!r})))"
    )
    env = {**os.environ, "EXTENSIONS_RUNTIME_MODULE_CACHE_DIR": str(tmp_path / "cache")}
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc=parent)
        first = _pid(url)
        (watched / "module.py").write_text("X = 2  # edited\n")
        deadline = time.monotonic() + 60
        second = first
        while time.monotonic() < deadline and second == first:
            with contextlib.suppress(httpx.HTTPError):  # between the old and the new one
                second = _pid(url)
            time.sleep(0.2)
        assert second != first, "the server was not restarted"
        assert httpx.get(url + "/readyz").status_code == 200
    finally:
        parent.send_signal(signal.SIGTERM)
        status = parent.wait(timeout=30)
    assert status == 0
    with pytest.raises(httpx.HTTPError):  # the child went with it
        httpx.get(url + "/readyz", timeout=2)
