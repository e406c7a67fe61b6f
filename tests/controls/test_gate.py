"""Turns per tenant: a cap on calls in progress, a bounded queue, first come first served."""

from __future__ import annotations

import asyncio

import pytest

from app.controls import TenantGate
from app.errors import ErrorKind, InvocationFailure


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_tenant_past_its_turns_waits_and_past_its_queue_is_refused() -> None:
    gate = TenantGate(active=2, waiting=2)
    await gate.enter("a")
    await gate.enter("a")
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
    gate.leave("a")
    await _settle()
    assert [task.done() for task in waiting] == [True, False]
    assert gate.active("a") == 2
    gate.leave("a")
    await _settle()
    assert waiting[1].done()
    for _ in range(2):
        gate.leave("a")
    assert gate.active("a") == 0 and gate.waiting() == 0


async def test_a_caller_giving_up_leaves_no_turn_behind() -> None:
    gate = TenantGate(active=1, waiting=4)
    await gate.enter("a")
    gone = asyncio.create_task(gate.enter("a"))
    stays = asyncio.create_task(gate.enter("a"))
    await _settle()
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    assert gate.waiting("a") == 1
    gate.leave("a")
    await _settle()
    assert stays.done()  # the turn skipped the caller that left
    gate.leave("a")
    assert gate.active("a") == 0 and gate.waiting() == 0


async def test_no_turn_within_the_deadline_is_overloaded() -> None:
    gate = TenantGate(active=1, waiting=4)
    await gate.enter("a")
    with pytest.raises(InvocationFailure) as info:
        await gate.enter("a", deadline_s=0.01)
    assert info.value.kind is ErrorKind.OVERLOADED
    assert gate.waiting("a") == 0
    gate.leave("a")
    assert gate.active("a") == 0


async def test_zero_turns_is_no_gate() -> None:
    gate = TenantGate(active=0, waiting=0)
    for _ in range(100):
        await gate.enter("a")
    gate.leave("a")
    assert gate.active("a") == 0 and gate.refusals == 0
