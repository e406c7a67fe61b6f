"""A failing extension's own log lines reach its caller, on every protocol.

``hello`` refuses input that is not a JSON object: it writes why to stderr
(a log line) and exits 1 (a TRAP). The explanation is what an author needs,
so it rides along in the error detail whenever the caller asked for logs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import wasmtime
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from google.rpc import status_pb2

from app.catalog import build_definition, publish
from app.settings import Settings
from tests._clients import buf_curl, connect_json, grpc_invoke
from tests._servers import BIN, ROOT, cli_server

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
    # The caller named no version: the detail says which one failed.
    promoted = json.loads((ROOT / "examples/extensions/hello/promoted.json").read_text())
    assert detail["version"] == promoted["version"], detail
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


# 100 lines of 200 bytes (20 KB) through host_log, a last line that explains, then a trap.
CHATTY_LINE = "chatty " * 28 + "chat"  # 200 bytes
CHATTY_FAILURE = wasmtime.wat2wasm(
    f"""(module
  (import "ameide" "host_log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "alloc") (param $n i32) (result i32)
    (local $p i32) (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n))) (local.get $p))
  (data (i32.const 128) "{CHATTY_LINE}")
  (data (i32.const 512) "the last words")
  (func (export "handle") (param i32 i32) (result i64)
    (local $i i32)
    (loop $again
      (call $log (i32.const 2) (i32.const 128) (i32.const 200))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 100))))
    (call $log (i32.const 4) (i32.const 512) (i32.const 14))
    unreachable))"""
)


@pytest.fixture(scope="module")
def chatty_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("chatty")
    wasm = bytes(CHATTY_FAILURE)
    definition = build_definition(
        wasm,
        extension_id="chatty",
        version="1",
        abi="raw",
        tier="pure",
        limits={"log_bytes": 256 * 1024, "timeout_ms": 5000},
        host_calls=[],
        config={},
    )
    asyncio.run(publish(Settings(extensions_dir=root), definition, wasm, promote=True))
    with cli_server("pyvoy", env={"EXTENSIONS_RUNTIME_EXTENSIONS_DIR": str(root)}) as url:
        yield url


def test_a_long_failing_log_fits_a_grpc_error(chatty_url: str) -> None:
    request = runtime_pb.InvokeExtensionRequest(extension_id="chatty", include_logs=True)
    with pytest.raises(grpc.RpcError) as info:
        grpc_invoke(chatty_url, request)
    error: Any = info.value
    assert error.code() is grpc.StatusCode.ABORTED, error.details()  # not a metadata overflow
    trailers = dict(error.trailing_metadata())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    detail = runtime_pb.InvocationError.from_binary(status.details[0].value)
    assert detail.kind == runtime_pb.ErrorKind.TRAP
    assert detail.logs[-1].message == "the last words"  # the explanation is kept
    assert detail.logs_truncated and sum(len(line.message) for line in detail.logs) <= 4096
