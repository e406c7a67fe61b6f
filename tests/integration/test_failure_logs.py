"""A failing extension's own log lines reach its caller, on every protocol.

``hello`` refuses input that is not a JSON object: it writes why to stderr
(a log line) and exits 1 (a TRAP). The explanation is what an author needs,
so it rides along in the error detail whenever the caller asked for logs.
"""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Any

import pytest

from app.gen.ameide.extensions.v1 import runtime_pb
from tests._clients import buf_curl, connect_json
from tests._servers import BIN, ROOT

EXPLANATION = "input must be a JSON object"
BODY = {"extensionId": "hello", "inputJson": [1], "includeLogs": True}


def _detail(error: dict[str, Any]) -> dict[str, Any]:
    """The InvocationError detail as JSON: the server's ``debug`` copy, else decoded."""
    details = error["details"]
    assert isinstance(details, list) and details, error
    if "debug" in details[0]:
        debug: dict[str, Any] = details[0]["debug"]
        return debug
    value = details[0]["value"]
    raw = base64.b64decode(value + "=" * (-len(value) % 4))
    decoded: dict[str, Any] = json.loads(runtime_pb.InvocationError.from_binary(raw).to_json())
    return decoded


def test_connect_json_error_carries_the_guests_logs(pyvoy_url: str) -> None:
    error = connect_json(pyvoy_url, BODY).json()
    assert error["code"] == "aborted"
    detail = _detail(error)
    assert detail["kind"] == "ERROR_KIND_TRAP"
    assert any(EXPLANATION in line["message"] for line in detail["logs"]), detail
    # Not asked for: not sent.
    quiet = _detail(connect_json(pyvoy_url, {**BODY, "includeLogs": False}).json())
    assert "logs" not in quiet


@pytest.mark.parametrize("protocol", ["grpc", "grpcweb", "connect"])
def test_every_protocol_carries_the_guests_logs(pyvoy_url: str, protocol: str) -> None:
    result = buf_curl(pyvoy_url, BODY, protocol)
    assert result.returncode != 0
    error = json.loads(result.stderr)
    assert error["code"] == "aborted", result.stderr
    assert any(EXPLANATION in line["message"] for line in _detail(error)["logs"]), result.stderr


def test_invoke_json_prints_the_logs_of_a_failure() -> None:
    module = ROOT / "examples" / "extensions" / "hello" / "1.0.0" / "module.wasm"
    done = subprocess.run(
        [str(BIN / "extensions-runtime"), "invoke", str(module), "--input", "[1]", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["error"]["kind"] == "TRAP"
    assert any(EXPLANATION in line["message"] for line in report["logs"]), report
