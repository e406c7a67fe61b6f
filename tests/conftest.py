from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import cli_server

# Folders whose tests all start servers or tools; elsewhere a test is in the full
# lane when it uses one of SERVER_FIXTURES or its module sets
# ``pytestmark = pytest.mark.integration``.
INTEGRATION_DIRS = {
    "integration",
    "reliability",
    "deploy",
    "clients",
    "client",
    "debug",
    "examples",
}
SERVER_FIXTURES = {"pyvoy_url", "uvicorn_url", "hypercorn_url", "s3_server", "s3"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the full lane, so `make test-unit` (``-m "not integration"``) is the fast loop."""
    root = Path(__file__).parent
    for item in items:
        parts = Path(item.path).relative_to(root).parts
        fixtures = set(getattr(item, "fixturenames", ()))
        if (len(parts) > 1 and parts[0] in INTEGRATION_DIRS) or fixtures & SERVER_FIXTURES:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def pyvoy_url() -> Iterator[str]:
    """The production default server, with the embedded example extensions."""
    with cli_server("pyvoy") as url:
        yield url


@pytest.fixture(scope="session")
def uvicorn_url() -> Iterator[str]:
    with cli_server("uvicorn") as url:
        yield url


@pytest.fixture(scope="session")
def hypercorn_url() -> Iterator[str]:
    with cli_server("hypercorn") as url:
        yield url
