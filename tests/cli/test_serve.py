"""``serve`` refuses unsafe token settings before any server starts: one clear line, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests._servers import BIN, ROOT, free_port
from tests._tokens import ISSUER, SECRET

pytestmark = pytest.mark.integration  # subprocesses and servers

BASE_ENV = {
    "EXTENSIONS_RUNTIME_AUTH_HS256_SECRET": SECRET,
    "EXTENSIONS_RUNTIME_EXTENSIONS_DIR": str(ROOT / "examples" / "extensions"),
    "EXTENSIONS_RUNTIME_LOG_FORMAT": "json",
}


def _serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EXTENSIONS_RUNTIME_")}
    args = [str(BIN / "extensions-runtime"), "serve", "--server", "uvicorn"]
    return subprocess.run(
        [*args, "--port", str(free_port())],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _refusal(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    refused = [line for line in lines if line.get("event") == "cli.refused_settings"]
    assert len(refused) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return str(refused[0]["error"])


def test_auth_on_without_an_issuer_refuses_to_start() -> None:
    assert "EXTENSIONS_RUNTIME_AUTH_ISSUER" in _refusal(_serve(BASE_ENV))


def test_hs256_host_call_tokens_refuse_to_start_outside_dev() -> None:
    env = {
        **BASE_ENV,
        "EXTENSIONS_RUNTIME_AUTH_ISSUER": ISSUER,
        "EXTENSIONS_RUNTIME_HOSTCALL_TOKEN_SECRET": "dev-secret-dev-secret-0123456789ab",
    }
    assert "local development only" in _refusal(_serve(env))


def test_a_bad_signing_key_file_refuses_to_start(tmp_path: Path) -> None:
    keys = tmp_path / "hostcall-keys.json"
    keys.write_text('{"keys": []}')
    env = {
        **BASE_ENV,
        "EXTENSIONS_RUNTIME_AUTH_ISSUER": ISSUER,
        "EXTENSIONS_RUNTIME_HOSTCALL_SIGNING_KEYS_FILE": str(keys),
    }
    assert "HOSTCALL_SIGNING_KEYS_FILE" in _refusal(_serve(env))
