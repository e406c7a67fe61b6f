"""Processes sharing one store apply each other's switches, promotions and size.

Each :class:`Fleet` here is one process's view; they share a
:class:`MemoryStore` (the S3 one is proven by tests/integration/test_fleet.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.controls import Controls, Degradation, Switch, Target
from app.errors import ErrorKind, InvocationFailure
from app.fleet import Fleet, TooManySwitches
from app.limits import DeclaredLimits
from app.settings import FleetConfig
from app.storage import MemoryStore, control_key


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Member:
    """One process: its controls, its fleet view, what it was told to reload."""

    def __init__(self, store: MemoryStore, clock: Clock, **config: float) -> None:
        self.controls = Controls(None)
        self.reloaded: list[tuple[str, str]] = []
        self.fleet = Fleet(
            store,
            self.controls,
            FleetConfig(**config),  # type: ignore[arg-type]
            reload=self._reload,
            clock=clock,
        )

    async def _reload(self, extension_id: str, owner: str) -> None:
        self.reloaded.append((extension_id, owner))

    def refused(self, extension_id: str = "echo", version: str = "1") -> str | None:
        return self.controls.decide(extension_id, version, "pure", "t1").disabled_reason


@pytest.fixture
async def trio() -> AsyncIterator[tuple[MemoryStore, Clock, list[Member]]]:
    store, clock = MemoryStore(), Clock()
    members = [Member(store, clock) for _ in range(3)]
    for member in members:
        await member.fleet.sync()
    yield store, clock, members
    for member in members:
        await member.fleet.close()


async def test_a_switch_set_in_one_process_holds_in_all(
    trio: tuple[MemoryStore, Clock, list[Member]],
) -> None:
    _, _, (a, b, c) = trio
    await a.fleet.disable(Switch(extension_id="echo", reason="bad build"), operator="ops")
    assert a.refused() == "bad build"  # at once where it was received
    assert (b.refused(), c.refused()) == (None, None)  # the others: on their next listing
    await b.fleet.sync()
    await c.fleet.sync()
    assert (b.refused(), c.refused()) == ("bad build", "bad build")
    disabled, _ = c.controls.listing()
    assert [(s.reason, s.set_by, source) for s, source in disabled] == [
        ("bad build", "ops", "admin")
    ]
    assert disabled[0][0].set_at is not None and disabled[0][0].expires_at is None

    assert await c.fleet.enable(Target(extension_id="echo"))  # lifted from another process
    assert not await c.fleet.enable(Target(extension_id="echo"))  # nothing left to lift
    await a.fleet.sync()
    await b.fleet.sync()
    assert (a.refused(), b.refused(), c.refused()) == (None, None, None)


async def test_degradations_travel_and_lift(trio: tuple[MemoryStore, Clock, list[Member]]) -> None:
    _, _, (a, b, _) = trio
    ceilings = DeclaredLimits(fuel=1000)
    await a.fleet.degrade(Degradation(risk_tier="pure", ceilings=ceilings), operator="ops")
    await b.fleet.sync()
    assert b.controls.decide("echo", "1", "pure", "t1").ceilings == [ceilings]
    await b.fleet.degrade(Degradation(risk_tier="pure", ceilings=DeclaredLimits()), operator="ops")
    await a.fleet.sync()
    assert a.controls.decide("echo", "1", "pure", "t1").ceilings == []


async def test_a_switch_with_a_ttl_lapses_everywhere_and_is_deleted(
    trio: tuple[MemoryStore, Clock, list[Member]],
) -> None:
    store, _, (a, b, _) = trio
    await a.fleet.disable(Switch(tenant_id="t1", reason="cool down"), operator="ops", ttl_s=0.2)
    await b.fleet.sync()
    assert b.refused() == "cool down"
    await asyncio.sleep(0.3)
    for member in trio[2]:
        await member.fleet.sync()
    assert (a.refused(), b.refused()) == (None, None)
    assert await store.list_objects(control_key("switches", ""), 100) == []


async def test_a_promotion_announced_by_one_is_reloaded_by_the_others_once(
    trio: tuple[MemoryStore, Clock, list[Member]],
) -> None:
    _, _, (a, b, c) = trio
    await a.fleet.announce_promotion("rules", "acme")
    for member in (a, b, c, a, b, c):  # twice: an event is followed once
        await member.fleet.sync()
    await asyncio.sleep(0)  # the reloads run as tasks
    await asyncio.sleep(0)
    assert (a.reloaded, b.reloaded, c.reloaded) == ([], [("rules", "acme")], [("rules", "acme")])
    assert b.fleet.events_applied == 1


async def test_events_from_before_start_are_not_replayed() -> None:
    store, clock = MemoryStore(), Clock()
    early = Member(store, clock)
    await early.fleet.sync()
    await early.fleet.announce_promotion("old", "")
    late = Member(store, clock)
    await late.fleet.sync()  # it loaded the whole catalog at start
    await late.fleet.sync()
    assert late.reloaded == []


async def test_the_fleet_counts_its_live_members(
    trio: tuple[MemoryStore, Clock, list[Member]],
) -> None:
    _, _, members = trio
    await members[0].fleet.sync()
    assert members[0].fleet.size == 3
    await members[2].fleet.close()  # leaves: deletes its heartbeat
    await members[0].fleet.sync()
    assert members[0].fleet.size == 2


async def test_unreachable_storage_makes_the_state_stale_then_recovers() -> None:
    store, clock = MemoryStore(), Clock()
    member = Member(store, clock, stale_after_s=10.0)
    assert member.fleet.readiness() == ["control state not read from storage yet (not read yet)"]
    assert await member.fleet.sync_quietly()
    assert member.fleet.readiness() == []
    store.fail = "storage is down"
    assert not await member.fleet.sync_quietly()
    clock.now += 5
    assert member.fleet.readiness() == []  # within the bound: the last state still holds
    clock.now += 6
    (reason,) = member.fleet.readiness()
    assert reason.startswith("control state is stale: last read from storage 11 s ago")
    assert "storage is down" in reason
    assert member.fleet.failures == 1
    store.fail = None
    assert await member.fleet.sync_quietly()
    assert member.fleet.readiness() == []


async def test_admin_changes_fail_whole_when_storage_is_down() -> None:
    store, clock = MemoryStore(), Clock()
    member = Member(store, clock)
    await member.fleet.sync()
    store.fail = "storage is down"
    with pytest.raises(InvocationFailure) as info:
        await member.fleet.disable(Switch(extension_id="echo"), operator="ops")
    assert info.value.kind is ErrorKind.UNAVAILABLE
    assert member.refused() is None  # nothing changed, not even here


async def test_the_number_of_admin_controls_is_capped() -> None:
    store, clock = MemoryStore(), Clock()
    member = Member(store, clock, max_switches=2)
    await member.fleet.sync()
    for tenant in ("t1", "t2"):
        await member.fleet.disable(Switch(tenant_id=tenant), operator="ops")
    await member.fleet.disable(Switch(tenant_id="t2", reason="again"), operator="ops")  # same key
    with pytest.raises(TooManySwitches):
        await member.fleet.disable(Switch(tenant_id="t3"), operator="ops")


async def test_a_malformed_object_is_skipped_not_fatal(
    trio: tuple[MemoryStore, Clock, list[Member]],
) -> None:
    store, _, (a, b, _) = trio
    await store.put(control_key("switches", "disable-garbage"), b"{not json", "application/json")
    await a.fleet.disable(Switch(extension_id="echo", reason="still applies"), operator="ops")
    await b.fleet.sync()
    assert b.refused() == "still applies"


def test_a_local_directory_fleet_is_never_unready() -> None:
    member = Fleet(MemoryStore(), Controls(None), FleetConfig(), reload=_noop, shared=False)
    assert member.readiness() == []


async def _noop(extension_id: str, owner: str) -> None:
    pass
