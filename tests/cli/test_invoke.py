"""The authors' local CLI: same sandbox, three exit statuses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import wasmtime

from tests._servers import BIN, ROOT

pytestmark = pytest.mark.integration  # subprocesses and servers

EXAMPLES = ROOT / "examples" / "extensions"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "extensions-runtime"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_success_prints_output_and_logs_apart() -> None:
    result = _cli("invoke", str(EXAMPLES / "hello/1.0.0/module.wasm"), "--input", '{"name":"Ada"}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"greeting": "Hello, Ada!"}
    assert "hello:" in result.stderr


def test_json_report_for_a_limit_hit(tmp_path: Path) -> None:
    loop = tmp_path / "loop.wasm"
    loop.write_bytes(
        wasmtime.wat2wasm(
            '(module (memory (export "memory") 1)'
            ' (func (export "alloc") (param i32) (result i32) i32.const 0)'
            ' (func (export "handle") (param i32 i32) (result i64) (loop br 0) i64.const 0))'
        )
    )
    result = _cli("invoke", str(loop), "--abi", "raw", "--fuel", "100000", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["error"]["kind"] == "FUEL_EXHAUSTED"
    assert report["output"] is None
    assert report["metrics"]["fuel_consumed"] == 100000


def test_echo_json_report() -> None:
    result = _cli(
        "invoke",
        str(EXAMPLES / "echo/1.0.0/module.wasm"),
        "--abi",
        "raw",
        "--input",
        "[1,2]",
        "--json",
    )
    assert result.returncode == 0
    report = json.loads(result.stdout)
    assert report["output"] == [1, 2]
    assert report["error"] is None


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert _cli("invoke", str(tmp_path / "missing.wasm")).returncode == 2
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"not wasm at all")
    result = _cli("invoke", str(junk))
    assert result.returncode == 2
    assert "INVALID_MODULE" in result.stderr
    assert _cli("invoke").returncode == 2


def test_json_report_on_every_path(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"not wasm at all")
    result = _cli("invoke", str(junk), "--json")
    assert result.returncode == 2
    report = json.loads(result.stdout)  # exactly one JSON object, nothing else
    assert report["error"]["kind"] == "INVALID_MODULE"
    assert report["output"] is None and report["logs"] == []
    missing = json.loads(_cli("invoke", str(tmp_path / "missing.wasm"), "--json").stdout)
    assert missing["error"]["kind"] == "USAGE"


def test_help_names_the_default_abi() -> None:
    text = " ".join(_cli("invoke", "--help").stdout.split())
    assert "default: component for a component, else wasi-stdio" in text


def test_invoke_hands_the_guest_its_config(tmp_path: Path) -> None:
    from tests.sandbox import _modules

    module = tmp_path / "config.wasm"
    module.write_bytes(_modules.CONFIG_RAW)
    result = _cli("invoke", str(module), "--abi", "raw", "--config", '{"rate": 0.2}')
    assert result.returncode == 0, result.stderr
    assert result.stdout == '{"rate":0.2}'
    assert _cli("invoke", str(module), "--abi", "raw", "--config", "[1]").returncode == 2
