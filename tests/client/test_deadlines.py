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

# spin: ~1.2 s of work on an idle machine (more on a busy one), within its fuel, so
# without the deadline under test the pure tier's 1 s (wall clock) is what ends every
# call below: bounds under it are what the behaviour needs, at any load.
LONG = b"700000000"
TIER_S = 1.0


@pytest.mark.parametrize("protocol", ["connect", "grpc", "grpc-web"])
async def test_call_timeout(url: str, protocol: str) -> None:
    async with ExtensionsClient(url, protocol=protocol) as client:  # type: ignore[arg-type]
        started = time.monotonic()
        with pytest.raises(ExtensionTimeout) as info:
            await client.invoke("spin", LONG, timeout_ms=200)
        elapsed = time.monotonic() - started
        assert 0.15 < elapsed < TIER_S, elapsed
        assert info.value.code == Code.DEADLINE_EXCEEDED
        assert info.value.extension_id == "spin"
        # The guest was stopped, not left burning a sandbox thread.
        assert (await client.invoke("echo", 1)).output == 1


def test_client_default_timeout_and_the_smallest_wins(url: str) -> None:
    with ExtensionsClientSync(url, timeout_ms=200) as client:
        started = time.monotonic()
        with pytest.raises(ExtensionTimeout):
            client.invoke("spin", LONG)
        assert time.monotonic() - started < TIER_S
        # A per-call timeout lower than the default wins...
        started = time.monotonic()
        with pytest.raises(ExtensionTimeout):
            client.invoke("spin", LONG, timeout_ms=50)
        assert time.monotonic() - started < TIER_S
        # ...and quick calls are unaffected.
        assert client.invoke("echo", {"a": 1}).output == {"a": 1}


async def test_absolute_deadline(url: str) -> None:
    async with ExtensionsClient(url) as client:
        started = time.monotonic()
        with pytest.raises(ExtensionTimeout):
            await client.invoke("spin", LONG, deadline=time.monotonic() + 0.25)
        assert time.monotonic() - started < TIER_S


async def test_forwarded_deadline_from_incoming_headers(url: str) -> None:
    incoming = {"Connect-Timeout-Ms": "250", "X-Ameide-Tenant-Id": "t1"}
    async with ExtensionsClient(url) as client:
        started = time.monotonic()
        with pytest.raises(ExtensionTimeout):
            await client.invoke("spin", LONG, context=forward(incoming))
        assert time.monotonic() - started < TIER_S
        # A short guest finishes well inside the same kind of deadline.
        fresh = forward({"grpc-timeout": "2S"})
        assert (await client.invoke("hello", {"name": "Ada"}, context=fresh)).is_json


async def test_passed_deadline_fails_without_calling(url: str) -> None:
    passed = Forwarded(
        context=ExecutionContext(request_id="late-1"), deadline=time.monotonic() - 0.01
    )
    async with ExtensionsClient(url) as client:
        with pytest.raises(ExtensionTimeout) as info:
            await client.invoke("echo", 1, context=passed)
    assert info.value.request_id == "late-1"
    # The SDK's own refusal (no metrics: the runtime never saw it), not a timing.
    assert "before the call was made" in info.value.message
    assert info.value.metrics is None


async def test_server_reports_its_own_timeout_with_detail(url: str) -> None:
    """``slow`` declares 150 ms: the runtime stops it and says so in the detail."""
    async with ExtensionsClient(url) as client:
        with pytest.raises(ExtensionTimeout) as info:
            await client.invoke("slow", LONG, timeout_ms=5_000)
    # Only the runtime's detail carries metrics: its 150 ms ended the call, not the 5 s.
    assert info.value.metrics is not None
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
