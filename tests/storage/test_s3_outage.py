"""After a storage failure, reads fail at once for a while instead of each waiting again.

Against a loopback port that accepts and at once closes every connection (so
each attempt is counted), with retries on: the first read pays the retries,
the ones right after it make no attempt at all, and a probe makes one.
Counting attempts instead of timing them holds on a busy machine.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from app.errors import ErrorKind, InvocationFailure
from app.settings import Settings
from app.storage._s3 import S3Source

pytestmark = pytest.mark.integration  # subprocesses and servers


class _Slammer:
    """A loopback port that accepts connections, counts them and closes them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@contextlib.contextmanager
def _slammer() -> Iterator[_Slammer]:
    port = _Slammer()
    try:
        yield port
    finally:
        port.close()


def _source(backoff_s: float, port: int, attempts: int = 2) -> S3Source:
    return S3Source(
        Settings(
            s3_endpoint_url=f"http://127.0.0.1:{port}",
            s3_access_key_id=SecretStr("k"),
            s3_secret_access_key=SecretStr("s"),
            s3_max_attempts=attempts,
            s3_outage_backoff_s=backoff_s,
        )
    )


async def _read(source: S3Source) -> tuple[float, InvocationFailure]:
    started = time.monotonic()
    with pytest.raises(InvocationFailure) as failure:
        await source.read_blob("x/1/module.wasm", 1024)
    return time.monotonic() - started, failure.value


async def test_reads_after_a_failure_fail_at_once() -> None:
    with _slammer() as port:
        source = _source(backoff_s=30.0, port=port.port)
        try:
            _, first = await _read(source)
            assert first.kind is ErrorKind.UNAVAILABLE
            assert source.fast_failures == 0
            paid = port.accepted
            assert paid >= 2, "the first read retries"
            for _ in range(3):
                _, failure = await _read(source)
                assert failure.kind is ErrorKind.UNAVAILABLE
                assert "next attempt in" in failure.message
            assert port.accepted == paid, "reads during the backoff never reach storage"
            assert source.fast_failures == 3
            assert await source.check() is not None  # /readyz still asks storage itself
        finally:
            await source.close()


async def test_without_backoff_every_read_asks() -> None:
    with _slammer() as port:
        source = _source(backoff_s=0.0, port=port.port)
        try:
            for _ in range(2):
                _, failure = await _read(source)
                assert failure.kind is ErrorKind.UNAVAILABLE
                assert "next attempt" not in failure.message
            assert source.fast_failures == 0
            assert port.accepted >= 4  # both reads, with their retries
        finally:
            await source.close()


async def test_during_an_outage_requests_are_single_attempts() -> None:
    with _slammer() as port:
        source = _source(backoff_s=0.2, port=port.port, attempts=3)  # then a probe
        try:
            await _read(source)
            retrying = port.accepted  # three attempts (the HTTP client may reconnect)
            time.sleep(0.3)
            _, failure = await _read(source)
            probe = port.accepted - retrying
            assert failure.kind is ErrorKind.UNAVAILABLE
            assert "next attempt" not in failure.message  # it really asked storage
            assert probe >= 1 and probe * 3 <= retrying, (probe, retrying)
        finally:
            await source.close()
