"""The acceptance suite in cluster mode, against a service started separately as if deployed.

The service runs in its own process; the runner gets nothing but the URL, the
tokens and the tenant through ``INTEGRATION_*`` variables (no settings, no
secret), exactly what it would get in CI against ``ameide-dev``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import ROOT, cli_server
from tests._tokens import ISSUER, SECRET, caller_token

RUNNER = ROOT / "tools" / "integration.py"
TENANT = "deployed-tenant"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("deployed")
    env = {
        "EXTENSIONS_RUNTIME_AUTH_HS256_SECRET": SECRET,
        "EXTENSIONS_RUNTIME_AUTH_ISSUER": ISSUER,
        "EXTENSIONS_RUNTIME_EXTENSIONS_DIR": str(ROOT / "examples" / "extensions"),
        "EXTENSIONS_RUNTIME_MODULE_CACHE_DIR": str(Path(tmp) / "cache"),
    }
    with cli_server("pyvoy", env=env, dev=False, log_path=tmp / "server.log") as url:
        yield url


def _runner(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    return subprocess.run(
        [sys.executable, str(RUNNER), "--mode", "cluster"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
    )


def test_the_suite_passes_against_a_separately_started_service(deployed: str) -> None:
    admin = caller_token(sub="ci", scope="extensions-runtime:admin")
    done = _runner(
        {
            "INTEGRATION_RUNTIME_URL": deployed,
            "INTEGRATION_TOKEN": caller_token(TENANT),
            "INTEGRATION_TENANT": TENANT,
            "INTEGRATION_ADMIN": "true",
            "INTEGRATION_ADMIN_TOKEN_COMMAND": f"printf %s {admin}",  # how a token is fetched
        }
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    summary = re.search(r"(\d+) passed, (\d+) skipped", output)
    assert summary is not None, output[-2000:]
    assert (int(summary[1]), int(summary[2])) == (9, 1)  # the kill switch round trip ran
    assert "local only: stops the local S3 server" in output  # the reason is printed


def test_cluster_mode_refuses_to_start_naming_every_bad_variable() -> None:
    done = _runner({"INTEGRATION_RUNTIME_URL": "ftp://somewhere", "INTEGRATION_ADMIN": "yes"})
    assert done.returncode == 2
    assert done.stdout == ""  # pytest never started
    (line,) = done.stderr.strip().splitlines()
    assert line == (
        "integration: cluster mode: missing INTEGRATION_TENANT, INTEGRATION_TOKEN or"
        " INTEGRATION_TOKEN_COMMAND; malformed INTEGRATION_RUNTIME_URL (expected"
        " http(s)://host[:port]), INTEGRATION_ADMIN (expected true or false)"
    )
