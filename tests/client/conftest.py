from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import cli_server
from tests.client._extensions import build, server_env


@pytest.fixture(scope="package")
def extensions_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("client-extensions")
    build(root)
    return root


@pytest.fixture(scope="package")
def runtime(extensions_root: Path) -> Iterator[tuple[str, Path]]:
    """``serve --dev`` (pyvoy) on the examples plus the failing extensions; (url, log file)."""
    log = extensions_root / "server.log"
    with cli_server("pyvoy", env=server_env(extensions_root), log_path=log) as url:
        yield url, log


@pytest.fixture(scope="package")
def url(runtime: tuple[str, Path]) -> str:
    return runtime[0]
