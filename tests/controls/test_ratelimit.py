"""Token buckets per tenant: burst, refill, retry hint, overrides, tiers, bounded memory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.controls import Controls, RateLimiter
from app.errors import ErrorKind, InvocationFailure
from app.settings import Rate, RateLimitConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _refused(limiter: RateLimiter, tenant: str) -> InvocationFailure:
    with pytest.raises(InvocationFailure) as info:
        limiter.check(tenant)
    assert info.value.kind is ErrorKind.OVERLOADED
    return info.value


def test_burst_then_refill_with_a_retry_hint() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimitConfig(Rate(rate_per_s=2, burst=3)), clock=clock)
    for _ in range(3):
        limiter.check("a")
    failure = _refused(limiter, "a")
    assert failure.retry_after_ms == 500  # one token at 2/s
    limiter.check("b")  # another tenant has its own bucket
    clock.now += 0.25
    assert _refused(limiter, "a").retry_after_ms == 250
    clock.now += 0.25
    limiter.check("a")
    assert limiter.rejections == {"": 2}  # without the tenant label: one series


def test_rejections_by_tenant_when_asked() -> None:
    limiter = RateLimiter(
        RateLimitConfig(Rate(rate_per_s=1, burst=1), count_tenants=True), clock=Clock()
    )
    limiter.check("a")
    _refused(limiter, "a")
    _refused(limiter, "a")
    assert limiter.rejections == {"a": 2}


def test_zero_rate_is_no_limit() -> None:
    limiter = RateLimiter(RateLimitConfig(Rate(rate_per_s=0, burst=1)), clock=Clock())
    for _ in range(1000):
        limiter.check("a")


def test_tenant_overrides_come_from_the_controls_file(tmp_path: Path) -> None:
    path = tmp_path / "controls.yaml"
    path.write_text("tenant_limits:\n  - {tenant_id: vip, rate_per_s: 100, burst: 50}\n")
    controls = Controls(path, check_interval_s=0)
    limiter = RateLimiter(
        RateLimitConfig(Rate(rate_per_s=1, burst=1)), overrides=controls.tenant_limit, clock=Clock()
    )
    for _ in range(50):
        limiter.check("vip")
    limiter.check("plain")
    _refused(limiter, "plain")
    path.write_text("tenant_limits: []\n")
    controls.file.current()
    assert controls.tenant_limit("vip") is None


def test_a_bad_tenant_limit_keeps_the_last_good_file(tmp_path: Path) -> None:
    path = tmp_path / "controls.yaml"
    path.write_text("tenant_limits:\n  - {tenant_id: vip, rate_per_s: 5, burst: 5}\n")
    controls = Controls(path, check_interval_s=0)
    path.write_text("tenant_limits:\n  - {tenant_id: vip, rate_per_s: -1}\n")
    limit = controls.tenant_limit("vip")
    assert limit is not None and (limit.rate_per_s, limit.burst) == (5, 5)
    assert controls.file.reload_failures == 1


def test_tier_buckets_are_per_tenant_and_tier() -> None:
    limiter = RateLimiter(
        RateLimitConfig(Rate(rate_per_s=0, burst=1), tiers={"write": Rate(rate_per_s=1, burst=2)}),
        clock=Clock(),
    )
    limiter.check_tier("a", "write")
    limiter.check_tier("a", "write")
    with pytest.raises(InvocationFailure, match="write extensions"):
        limiter.check_tier("a", "write")
    limiter.check_tier("b", "write")
    for _ in range(10):
        limiter.check_tier("a", "read")  # no limit for this tier


def test_a_flood_of_tenants_cannot_grow_the_buckets() -> None:
    limiter = RateLimiter(
        RateLimitConfig(Rate(rate_per_s=1, burst=1), max_buckets=100), clock=Clock()
    )
    for i in range(10_000):
        limiter.check(f"tenant-{i}")
    assert len(limiter._buckets) == 100  # the bound is the point


async def _settled(task: asyncio.Task[None]) -> bool:
    """Whether ``task`` finished within a few turns of the loop (no real waiting)."""
    for _ in range(5):
        await asyncio.sleep(0)
    return task.done()


async def test_a_refusal_is_held_before_it_is_answered() -> None:
    limiter = RateLimiter(
        RateLimitConfig(Rate(rate_per_s=1, burst=1), hold_s=30, hold_max_per_tenant=2, hold_max=3),
        clock=Clock(),
    )
    await limiter.admit("a")  # the token: answered at once
    held = [asyncio.create_task(limiter.admit("a")) for _ in range(2)]
    assert not any([await _settled(task) for task in held])
    assert limiter.holding == 2 and limiter.held_total == 2
    # Past the tenant's cap a refusal is answered at once, held no more.
    third = asyncio.create_task(limiter.admit("a"))
    assert await _settled(third)
    assert isinstance(third.exception(), InvocationFailure)
    # Another tenant still gets its own token, and one held slot of the three in all.
    await limiter.admit("b")
    b_held = asyncio.create_task(limiter.admit("b"))
    assert not await _settled(b_held)
    c_first = asyncio.create_task(limiter.admit("c"))
    assert await _settled(c_first) and c_first.exception() is None
    c_refused = asyncio.create_task(limiter.admit("c"))
    assert await _settled(c_refused)  # the process-wide cap of 3 is full
    assert isinstance(c_refused.exception(), InvocationFailure)
    for task in [*held, b_held]:
        task.cancel()
    await asyncio.gather(*held, b_held, return_exceptions=True)
    assert limiter.holding == 0  # a cancelled hold gives its slot back


async def test_a_hold_never_outlasts_the_callers_deadline() -> None:
    limiter = RateLimiter(
        RateLimitConfig(Rate(rate_per_s=1, burst=1), hold_s=30, hold_max_per_tenant=8, hold_max=8),
        clock=Clock(),
    )
    await limiter.admit("a")
    with pytest.raises(InvocationFailure) as info:
        await asyncio.wait_for(limiter.admit("a", deadline_s=0.05), timeout=20)
    assert info.value.kind is ErrorKind.OVERLOADED
    assert limiter.held_total == 1


async def test_no_hold_by_default() -> None:
    limiter = RateLimiter(RateLimitConfig(Rate(rate_per_s=1, burst=1)), clock=Clock())
    await limiter.admit("a")
    refused = asyncio.create_task(limiter.admit("a"))
    assert await _settled(refused)
    assert isinstance(refused.exception(), InvocationFailure)
    assert limiter.held_total == 0


def test_a_rate_is_divided_among_the_fleet() -> None:
    clock = Clock()
    fleet = [3]
    limiter = RateLimiter(
        RateLimitConfig(Rate(rate_per_s=6, burst=6)), share=lambda: fleet[0], clock=clock
    )
    for _ in range(2):  # a third of the burst here
        limiter.check("a")
    assert _refused(limiter, "a").retry_after_ms == 500  # a third of the rate: 2/s
    fleet[0] = 1  # the others left: the whole rate again, 3 tokens in half a second
    clock.now += 0.5
    for _ in range(3):
        limiter.check("a")
    _refused(limiter, "a")
