"""The author's dev loop: publish, then call, against ``serve --dev``, in about a second.

``publish`` with no storage configured writes to ``var/extensions/`` (seeded
from the examples, untracked), which ``serve --dev`` re-reads every half
second, so the repository stays clean and no webhook or token is needed.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import pytest

from tests._clients import connect_json
from tests._servers import BIN, ROOT, cli_server

pytestmark = pytest.mark.integration  # subprocesses and servers

DEV_DIR = ROOT / "var" / "extensions"
ECHO = ROOT / "examples" / "extensions" / "echo" / "1.0.0" / "module.wasm"


def _git_status() -> str:
    done = subprocess.run(
        ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_publish_then_call_in_dev_without_touching_the_repository() -> None:
    extension_id = f"devloop-{uuid.uuid4().hex[:8]}"
    before = _git_status()
    try:
        with cli_server("pyvoy") as url:
            assert (DEV_DIR / "echo" / "1.0.0" / "module.wasm").is_file()  # seeded
            command = [str(BIN / "extensions-runtime"), "publish", str(ECHO)]
            command += ["--id", extension_id, "--version", "1.0.0", "--abi", "raw", "--promote"]
            published = subprocess.run(
                command,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert published.returncode == 0, published.stderr
            assert str(DEV_DIR / extension_id) in published.stdout  # it says where
            done = time.monotonic()
            body = {"extensionId": extension_id, "inputJson": {"hi": 1}}
            while (response := connect_json(url, body)).status_code != 200:
                assert response.json()["code"] == "not_found", response.text
                assert time.monotonic() - done < 30, "the dev server never saw the new version"
                time.sleep(0.05)
            print(f"live {time.monotonic() - done:.2f} s after publish returned")
            assert response.json()["outputJson"] == {"hi": 1}
        assert _git_status() == before
    finally:
        shutil.rmtree(DEV_DIR / extension_id, ignore_errors=True)
