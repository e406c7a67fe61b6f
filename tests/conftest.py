from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import Lane, cli_server

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
    "acceptance",
}
SERVER_FIXTURES = {"pyvoy_url", "uvicorn_url", "hypercorn_url", "s3_server", "s3"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("order", "test order (to find tests that depend on it)")
    group.addoption("--reverse", action="store_true", help="run the tests in reverse order")
    group.addoption(
        "--shuffle", type=int, metavar="SEED", help="run the tests in a random order from SEED"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the full lane, so `make test-unit` (``-m "not integration"``) is the fast loop;
    then reorder if asked: no test may pass only because another ran first."""
    root = Path(__file__).parent
    for item in items:
        parts = Path(item.path).relative_to(root).parts
        fixtures = set(getattr(item, "fixturenames", ()))
        if (len(parts) > 1 and parts[0] in INTEGRATION_DIRS) or fixtures & SERVER_FIXTURES:
            item.add_marker(pytest.mark.integration)
    if config.getoption("reverse"):
        items.reverse()
    seed = config.getoption("shuffle")
    if seed is not None:
        random.Random(seed).shuffle(items)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Only the integration lane may start servers (``tests/_servers.py`` checks)."""
    Lane.servers_allowed = item.get_closest_marker("integration") is not None


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
