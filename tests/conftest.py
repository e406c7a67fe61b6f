from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._servers import cli_server


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
