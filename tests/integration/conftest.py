"""A real S3-compatible server (SeaweedFS ``weed mini``) for the storage tests.

One server per test module (it starts in about a second); every test gets a
bucket of its own, so tests never see each other's objects.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests._s3 import SeaweedS3
from tests.integration._storage import S3Bucket


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def s3(s3_server: SeaweedS3, tmp_path: Path) -> AsyncIterator[S3Bucket]:
    if s3_server.proc is None:  # a test that stopped it failed before starting it again
        s3_server.start()
    bucket = S3Bucket(s3_server, f"ext-{uuid.uuid4().hex[:16]}", tmp_path / "module-cache")
    await bucket.create()
    yield bucket
