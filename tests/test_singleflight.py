"""One piece of async work per key: shared by waiters, never cancelled by one leaving."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from app._singleflight import SingleFlight


async def test_concurrent_callers_share_one_run_per_key() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    runs: list[str] = []
    release = asyncio.Event()

    def work(key: str) -> Callable[[], Coroutine[Any, Any, int]]:
        async def body() -> int:
            runs.append(key)
            await release.wait()
            return len(runs)

        return body

    waiters = [asyncio.ensure_future(flight.wait(k, work(k))) for k in ("a", "a", "b", "a")]
    await asyncio.sleep(0)
    assert flight.running("a") and flight.running("b")
    release.set()
    results = await asyncio.gather(*waiters)
    assert sorted(runs) == ["a", "b"]
    assert results[0] == results[1] == results[3]
    assert not flight.running("a") and not flight.running("b")


async def test_a_caller_that_leaves_does_not_cancel_the_others() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    release = asyncio.Event()

    async def body() -> str:
        await release.wait()
        return "done"

    leaving = asyncio.ensure_future(flight.wait("k", body))
    staying = asyncio.ensure_future(flight.wait("k", body))
    await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await staying == "done"
    assert leaving.cancelled()


async def test_a_failure_reaches_every_waiter_and_frees_the_key() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    calls = 0

    async def failing() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise ValueError("storage down")

    results = await asyncio.gather(
        flight.wait("k", failing), flight.wait("k", failing), return_exceptions=True
    )
    assert calls == 1
    assert all(isinstance(r, ValueError) for r in results)
    assert not flight.running("k")

    async def working() -> str:
        return "ok"

    assert await flight.wait("k", working) == "ok"  # the next caller starts afresh


async def test_work_started_in_the_background_is_joined_later() -> None:
    flight: SingleFlight[None, int] = SingleFlight()
    calls = 0

    async def body() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        return 7

    flight.start(None, body)  # nobody waits: a refresh ahead
    assert await flight.wait(None, body) == 7
    assert calls == 1
