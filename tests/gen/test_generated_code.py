"""``proto/`` is the source: the committed generated code must be what it generates.

Two templates: the service's (``buf.gen.yaml`` at the root, admin.proto only,
into ``app/gen``) and the Python SDK's (``clients/python/buf.gen.yaml``,
runtime.proto only, into the package it ships; the service imports those).
``make gen`` runs both, and no stub exists twice.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests._servers import BIN, ROOT

pytestmark = pytest.mark.integration  # subprocesses and servers

SDK = ROOT / "clients" / "python"

# (directory buf runs in, that directory's template, the committed output under it)
TEMPLATES = {
    "service": (ROOT, Path("app/gen")),
    "python-sdk": (SDK, Path("src/ameide_extensions_client/gen")),
}


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.mark.parametrize("template", TEMPLATES)
def test_committed_code_matches_proto(template: str, tmp_path: Path) -> None:
    cwd, out = TEMPLATES[template]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [str(BIN / "buf"), "generate", "--template", "buf.gen.yaml", "--output", str(tmp_path)],
        cwd=cwd,
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    fresh = _tree(tmp_path / out)
    committed = _tree(cwd / out)
    assert fresh, "buf generate produced nothing"
    stale = sorted(k for k in fresh.keys() | committed.keys() if fresh.get(k) != committed.get(k))
    where = (cwd / out).relative_to(ROOT)
    assert not stale, f"{where} is stale, run `make gen`: {stale}"


def test_sdk_ships_the_runtime_stubs_only() -> None:
    """The SDK carries runtime.proto's messages and client; the admin API stays the service's."""
    v1 = SDK / TEMPLATES["python-sdk"][1] / "ameide" / "extensions" / "v1"
    assert sorted(p.name for p in v1.glob("*.py")) == [
        "__init__.py",
        "runtime_connect.py",
        "runtime_pb.py",
    ]


def test_the_service_generates_only_its_admin_api() -> None:
    """The runtime API's stubs are the SDK's: one copy, which the service imports."""
    v1 = ROOT / TEMPLATES["service"][1] / "ameide" / "extensions" / "v1"
    assert sorted(p.name for p in v1.glob("*.py")) == [
        "__init__.py",
        "admin_connect.py",
        "admin_pb.py",
    ]


def test_buf_lint_passes() -> None:
    result = subprocess.run(
        [str(BIN / "buf"), "lint"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
