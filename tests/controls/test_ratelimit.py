"""Token buckets per tenant: burst, refill, retry hint, overrides, tiers, bounded memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.controls import Controls, RateLimiter
from app.errors import ErrorKind, InvocationFailure
from app.settings import Rate


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
    limiter = RateLimiter(Rate(rate_per_s=2, burst=3), clock=clock)
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
    limiter = RateLimiter(Rate(rate_per_s=1, burst=1), clock=Clock(), count_tenants=True)
    limiter.check("a")
    _refused(limiter, "a")
    _refused(limiter, "a")
    assert limiter.rejections == {"a": 2}


def test_zero_rate_is_no_limit() -> None:
    limiter = RateLimiter(Rate(rate_per_s=0, burst=1), clock=Clock())
    for _ in range(1000):
        limiter.check("a")


def test_tenant_overrides_come_from_the_controls_file(tmp_path: Path) -> None:
    path = tmp_path / "controls.yaml"
    path.write_text("tenant_limits:\n  - {tenant_id: vip, rate_per_s: 100, burst: 50}\n")
    controls = Controls(path, check_interval_s=0)
    limiter = RateLimiter(
        Rate(rate_per_s=1, burst=1), overrides=controls.tenant_limit, clock=Clock()
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
        Rate(rate_per_s=0, burst=1), tiers={"write": Rate(rate_per_s=1, burst=2)}, clock=Clock()
    )
    limiter.check_tier("a", "write")
    limiter.check_tier("a", "write")
    with pytest.raises(InvocationFailure, match="write extensions"):
        limiter.check_tier("a", "write")
    limiter.check_tier("b", "write")
    for _ in range(10):
        limiter.check_tier("a", "read")  # no limit for this tier


def test_a_flood_of_tenants_cannot_grow_the_buckets() -> None:
    limiter = RateLimiter(Rate(rate_per_s=1, burst=1), max_buckets=100, clock=Clock())
    for i in range(10_000):
        limiter.check(f"tenant-{i}")
    assert len(limiter._buckets) == 100  # the bound is the point
