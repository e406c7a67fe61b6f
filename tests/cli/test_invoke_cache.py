"""``invoke`` keeps what it compiled in the service's disk cache: a second run of the
same bytes loads the artifact instead of compiling (seconds for a Python component)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli._invoke import invoke_module
from app.sandbox import DeclaredLimits, SandboxEngine
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ECHO = ROOT / "examples" / "extensions" / "echo" / "1.0.0" / "module.wasm"


def _run(cache: Path | None) -> int:
    return invoke_module(
        Settings(),
        ECHO,
        abi="raw",
        input_data=b'{"a": 1}',
        declared=DeclaredLimits(),
        as_json=True,
        cache_dir=cache,
    )


def test_the_second_run_loads_the_first_runs_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    compiles: list[str] = []
    real_compile = SandboxEngine.compile

    def counting(self: SandboxEngine, wasm: bytes, abi: str) -> object:
        compiles.append(abi)
        return real_compile(self, wasm, abi)

    monkeypatch.setattr(SandboxEngine, "compile", counting)
    assert _run(tmp_path) == 0
    assert len(compiles) == 1
    assert [p.suffix for p in tmp_path.iterdir() if p.suffix == ".cwasm"] == [".cwasm"]
    assert _run(tmp_path) == 0
    assert len(compiles) == 1  # loaded, not compiled again
    assert _run(None) == 0  # --no-cache
    assert len(compiles) == 2
    outputs = [line for line in capsys.readouterr().out.splitlines() if line]
    assert len(outputs) == 3
    assert all('"output": {"a": 1}' in line for line in outputs)
