"""After a storage failure, reads fail at once for a while instead of each waiting again.

Against a loopback port where nothing listens (connection refused), with
retries on: the first read pays the retries, the ones right after it do not.
"""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from app.errors import ErrorKind, InvocationFailure
from app.settings import Settings
from app.storage._s3 import S3Source
from tests._servers import free_port

pytestmark = pytest.mark.integration  # subprocesses and servers


def _source(backoff_s: float) -> S3Source:
    return S3Source(
        Settings(
            s3_endpoint_url=f"http://127.0.0.1:{free_port()}",
            s3_access_key_id=SecretStr("k"),
            s3_secret_access_key=SecretStr("s"),
            s3_max_attempts=2,
            s3_outage_backoff_s=backoff_s,
        )
    )


async def _read(source: S3Source) -> tuple[float, InvocationFailure]:
    started = time.monotonic()
    with pytest.raises(InvocationFailure) as failure:
        await source.read_blob("x/1/module.wasm", 1024)
    return time.monotonic() - started, failure.value


async def test_reads_after_a_failure_fail_at_once() -> None:
    source = _source(backoff_s=30.0)
    try:
        first_s, first = await _read(source)
        assert first.kind is ErrorKind.UNAVAILABLE
        assert source.fast_failures == 0
        for _ in range(3):
            elapsed, failure = await _read(source)
            assert failure.kind is ErrorKind.UNAVAILABLE
            assert "next attempt in" in failure.message
            assert elapsed < first_s / 4, (elapsed, first_s)
        assert source.fast_failures == 3
        assert await source.check() is not None  # /readyz still asks storage itself
    finally:
        await source.close()


async def test_without_backoff_every_read_asks() -> None:
    source = _source(backoff_s=0.0)
    try:
        for _ in range(2):
            _, failure = await _read(source)
            assert failure.kind is ErrorKind.UNAVAILABLE
            assert "next attempt" not in failure.message
        assert source.fast_failures == 0
    finally:
        await source.close()


async def test_during_an_outage_requests_are_single_attempts() -> None:
    retrying = _source(backoff_s=0.0)
    source = _source(backoff_s=0.2)  # after this pause, the next read is a probe
    try:
        await _read(retrying)  # the clients exist from here on
        retry_s, _ = await _read(retrying)
        await _read(source)
        time.sleep(0.3)
        probe_s, failure = await _read(source)
        assert failure.kind is ErrorKind.UNAVAILABLE
        assert "next attempt" not in failure.message  # it really asked storage
        assert probe_s < retry_s / 2, (probe_s, retry_s)
    finally:
        await source.close()
        await retrying.close()
