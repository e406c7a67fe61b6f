"""``proto/`` is the source: the committed ``app/gen`` must be what it generates."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests._servers import BIN, ROOT

pytestmark = pytest.mark.integration  # subprocesses and servers


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_committed_code_matches_proto(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(
        [str(BIN / "buf"), "generate", "--output", str(tmp_path)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    fresh = _tree(tmp_path / "app" / "gen")
    committed = _tree(ROOT / "app" / "gen")
    assert fresh, "buf generate produced nothing"
    stale = sorted(k for k in fresh.keys() | committed.keys() if fresh.get(k) != committed.get(k))
    assert not stale, f"app/gen is stale, run `make gen`: {stale}"


def test_buf_lint_passes() -> None:
    result = subprocess.run(
        [str(BIN / "buf"), "lint"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
