"""Turns per tenant: a cap on calls in progress, a bounded queue, turns lent out while waiting."""

from __future__ import annotations

import asyncio

import pytest

from app.controls import TenantGate, Turn, off_turn
from app.errors import ErrorKind, InvocationFailure


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_tenant_past_its_turns_waits_and_past_its_queue_is_refused() -> None:
    gate = TenantGate(active=2, waiting=2)
    held = [await gate.enter("a"), await gate.enter("a")]
    waiting = [asyncio.create_task(gate.enter("a")) for _ in range(2)]
    await _settle()
    assert not any(task.done() for task in waiting)
    assert gate.waiting("a") == 2
    with pytest.raises(InvocationFailure) as info:
        await gate.enter("a")
    assert info.value.kind is ErrorKind.OVERLOADED
    assert info.value.retry_after_ms > 0
    assert gate.refusals == 1
    # Another tenant has turns of its own, whatever "a" holds.
    await gate.enter("b")
    assert gate.active("b") == 1
    # Turns pass on in arrival order, and the count in progress stays at the cap.
    held[0].release()
    held[0].release()  # once only
    await _settle()
    assert [task.done() for task in waiting] == [True, False]
    assert gate.active("a") == 2
    held[1].release()
    await _settle()
    assert waiting[1].done()
    for task in waiting:
        task.result().release()
    assert gate.active("a") == 0 and gate.waiting() == 0


async def test_a_caller_giving_up_leaves_no_turn_behind() -> None:
    gate = TenantGate(active=1, waiting=4)
    first = await gate.enter("a")
    gone = asyncio.create_task(gate.enter("a"))
    stays = asyncio.create_task(gate.enter("a"))
    await _settle()
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    assert gate.waiting("a") == 1
    first.release()
    await _settle()
    assert stays.done()  # the turn skipped the caller that left
    stays.result().release()
    assert gate.active("a") == 0 and gate.waiting() == 0


async def test_no_turn_within_the_deadline_is_overloaded() -> None:
    gate = TenantGate(active=1, waiting=4)
    first = await gate.enter("a")
    with pytest.raises(InvocationFailure) as info:
        await gate.enter("a", deadline_s=0.01)
    assert info.value.kind is ErrorKind.OVERLOADED
    assert gate.waiting("a") == 0
    first.release()
    assert gate.active("a") == 0


async def test_a_call_waiting_elsewhere_lends_its_turn_and_takes_one_back() -> None:
    """A tenant's hanging upstream must not hold the turns its quick calls need."""
    gate = TenantGate(active=1, waiting=1)
    upstream = asyncio.Event()

    async def slow_call() -> str:
        turn = await gate.enter("a")
        try:
            await off_turn(upstream.wait())  # a lane's thread, a host call
            assert turn.holding  # the rest of the call works with a turn again
            return "slow"
        finally:
            turn.release()

    async def quick_call() -> str:
        turn = await gate.enter("a")
        turn.release()
        return "quick"

    slow = asyncio.create_task(slow_call())
    await _settle()
    assert gate.active("a") == 0  # lent out while it waits
    assert await quick_call() == "quick"
    # Coming back it queues for a turn even past the waiting cap: it was admitted.
    holder = await gate.enter("a")
    blocker = asyncio.create_task(gate.enter("a"))
    await _settle()
    upstream.set()
    await _settle()
    assert not slow.done() and gate.waiting("a") == 2
    holder.release()
    await _settle()
    (await blocker).release()
    assert await slow == "slow"
    assert gate.active("a") == 0 and gate.waiting() == 0


async def test_zero_turns_is_no_gate() -> None:
    gate = TenantGate(active=0, waiting=0)
    turns: list[Turn] = [await gate.enter("a") for _ in range(100)]
    for turn in turns:
        turn.release()
    assert await off_turn(asyncio.sleep(0, "through")) == "through"
    assert gate.active("a") == 0 and gate.refusals == 0
