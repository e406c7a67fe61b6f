"""Deadlines: the call's, the client's, and the incoming request's, all honoured."""

from __future__ import annotations

import asyncio
import time

import pytest
from ameide_extensions_client import (
    ExecutionContext,
    ExtensionsClient,
    ExtensionsClientSync,
    ExtensionTimeout,
    Forwarded,
    forward,
)
from connectrpc.code import Code

LONG = b"500000000"  # spin: about a second of work, stopped by the pure tier's 1 s


@pytest.mark.parametrize("protocol", ["connect", "grpc", "grpc-web"])
async def test_call_timeout(url: str, protocol: str) -> None:
    async with ExtensionsClient(url, protocol=protocol) as client:  # type: ignore[arg-type]
        started = time.monotonic()
        with pytest.raises(ExtensionTimeout) as info:
            await client.invoke("spin", LONG, timeout_ms=200)
        elapsed = time.monotonic() - started
        assert 0.15 < elapsed < 0.8, elapsed
        assert info.value.code == Code.DEADLINE_EXCEEDED
        assert info.value.extension_id == "spin"
        # The guest was stopped, not left burning a sandbox thread.
        started = time.monotonic()
        assert (await client.invoke("echo", 1)).output == 1
        assert time.monotonic() - started < 0.5


def test_client_default_timeout_and_the_smallest_wins(url: str) -> None:
    with ExtensionsClientSync(url, timeout_ms=200) as client:
        started = time.monotonic()
        with pytest.raises(ExtensionTimeout):
            client.invoke("spin", LONG)
        assert time.monotonic() - started < 0.8
        # A per-call timeout lower than the default wins...
        started = time.monotonic()
        with pytest.raises(ExtensionTimeout):
            client.invoke("spin", LONG, timeout_ms=50)
        assert time.monotonic() - started < 0.5
        # ...and quick calls are unaffected.
        assert client.invoke("echo", {"a": 1}).output == {"a": 1}


async def test_absolute_deadline(url: str) -> None:
    async with ExtensionsClient(url) as client:
        started = time.monotonic()
        with pytest.raises(ExtensionTimeout):
            await client.invoke("spin", LONG, deadline=time.monotonic() + 0.25)
        assert time.monotonic() - started < 0.8


async def test_forwarded_deadline_from_incoming_headers(url: str) -> None:
    incoming = {"Connect-Timeout-Ms": "250", "X-Ameide-Tenant-Id": "t1"}
    async with ExtensionsClient(url) as client:
        started = time.monotonic()
        with pytest.raises(ExtensionTimeout):
            await client.invoke("spin", LONG, context=forward(incoming))
        assert time.monotonic() - started < 0.8
        # A short guest finishes well inside the same kind of deadline.
        fresh = forward({"grpc-timeout": "2S"})
        assert (await client.invoke("hello", {"name": "Ada"}, context=fresh)).is_json


async def test_passed_deadline_fails_without_calling(url: str) -> None:
    passed = Forwarded(
        context=ExecutionContext(request_id="late-1"), deadline=time.monotonic() - 0.01
    )
    async with ExtensionsClient(url) as client:
        started = time.monotonic()
        with pytest.raises(ExtensionTimeout) as info:
            await client.invoke("echo", 1, context=passed)
    assert time.monotonic() - started < 0.05
    assert info.value.request_id == "late-1"
    assert "before the call was made" in info.value.message


async def test_server_reports_its_own_timeout_with_detail(url: str) -> None:
    """``slow`` declares 150 ms: the runtime stops it and says so in the detail."""
    async with ExtensionsClient(url) as client:
        started = time.monotonic()
        with pytest.raises(ExtensionTimeout) as info:
            await client.invoke("slow", LONG, timeout_ms=5_000)
    assert time.monotonic() - started < 1.0
    assert info.value.metrics is not None  # only the runtime's detail carries metrics
    assert info.value.version == "1.0.0" or info.value.extension_id == "slow"


async def test_cancelling_a_call_stays_a_cancellation(url: str) -> None:
    """A caller that gives up gets CancelledError (asyncio semantics), not an ExtensionError."""
    async with ExtensionsClient(url) as client:
        task = asyncio.create_task(client.invoke("spin", LONG))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # An asyncio timeout around the call is a plain TimeoutError, as usual.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await client.invoke("spin", LONG)
        assert (await client.invoke("echo", 1)).output == 1
