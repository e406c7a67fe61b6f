from __future__ import annotations

from pathlib import Path

import pytest

from app.controls import (
    BreakerConfig,
    Breakers,
    BreakerState,
    Controls,
    Degradation,
    Permit,
    Refusal,
    Switch,
    Target,
    VersionKey,
    parse_controls,
)
from app.limits import DeclaredLimits


def test_admin_switches_cover_their_targets() -> None:
    controls = Controls(None)
    assert controls.decide("a", "1", "pure", "t1").disabled_reason is None
    controls.disable(Switch(extension_id="a", version="1", reason="bad build"))
    assert controls.decide("a", "1", "pure", "t1").disabled_reason == "bad build"
    assert controls.decide("a", "2", "pure", "t1").disabled_reason is None
    controls.disable(Switch(risk_tier="write", reason="incident 42"))
    assert controls.decide("b", "9", "write", "t1").disabled_reason == "incident 42"
    controls.disable(Switch(tenant_id="t2", reason="tenant abuse"))
    assert controls.decide("a", "2", "pure", "t2").disabled_reason == "tenant abuse"
    assert controls.enable(Target(extension_id="a", version="1"))
    assert controls.decide("a", "1", "pure", "t1").disabled_reason is None
    assert not controls.enable(Target(extension_id="a", version="1"))


def test_targets_name_exactly_one_thing() -> None:
    with pytest.raises(ValueError):
        Target()
    with pytest.raises(ValueError):
        Target(extension_id="a", tenant_id="t")
    with pytest.raises(ValueError):
        Target(version="1")


def test_file_switches_hot_reload_and_keep_last_good(tmp_path: Path) -> None:
    path = tmp_path / "controls.yaml"
    path.write_text("disabled:\n  - {risk_tier: read, reason: maintenance}\n")
    controls = Controls(path, check_interval_s=0)
    assert controls.decide("x", "1", "read", "t").disabled_reason == "maintenance"
    path.write_text("disabled: []\ndegraded:\n  - {extension_id: x, ceilings: {timeout_ms: 50}}\n")
    decision = controls.decide("x", "1", "read", "t")
    assert decision.disabled_reason is None
    assert decision.ceilings == [DeclaredLimits(timeout_ms=50)]
    path.write_text("disabled: [ {broken")
    assert controls.decide("x", "1", "read", "t").ceilings == [DeclaredLimits(timeout_ms=50)]
    assert controls.file.reload_failures == 1
    assert controls.file.last_error


def test_admin_degradation_and_clearing() -> None:
    controls = Controls(None)
    controls.degrade(Degradation(risk_tier="pure", ceilings=DeclaredLimits(fuel=10)))
    assert controls.decide("a", "1", "pure", "t").ceilings == [DeclaredLimits(fuel=10)]
    controls.degrade(Degradation(risk_tier="pure", ceilings=DeclaredLimits()))
    assert controls.decide("a", "1", "pure", "t").ceilings == []


def _run(breakers: Breakers, key: VersionKey, tenant: str, *, failed: bool) -> bool:
    """One call through the breaker; False when it was refused."""
    permit = breakers.allow(key, tenant)
    if isinstance(permit, Refusal):
        return False
    breakers.record(permit, failed)
    return True


FLAKY: VersionKey = ("", "flaky", "1")


class Clock:
    """The breakers' clock, moved by the test: a cooldown passes exactly when the test
    says so, not when a busy machine happens to pause it."""

    def __init__(self, breakers: Breakers) -> None:
        self.now = 1000.0
        breakers._now = self

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_on_failure_rate_and_closes_after_probe() -> None:
    breakers = Breakers(BreakerConfig(window_s=10, min_calls=4, failure_rate=0.5, cooldown_s=0.05))
    clock = Clock(breakers)
    for _ in range(3):
        assert _run(breakers, FLAKY, "t1", failed=True)
    assert breakers.tenant_state(FLAKY, "t1") is BreakerState.CLOSED  # below minimum volume
    assert _run(breakers, FLAKY, "t1", failed=True)
    assert breakers.tenant_state(FLAKY, "t1") is BreakerState.OPEN
    assert not _run(breakers, FLAKY, "t1", failed=False)
    assert _run(breakers, ("", "healthy", "1"), "t1", failed=False)  # other extensions run
    clock.now += 0.06
    probe = breakers.allow(FLAKY, "t1")
    assert isinstance(probe, Permit) and probe.probe == "tenant"
    assert isinstance(breakers.allow(FLAKY, "t1"), Refusal)  # only one probe at a time
    assert breakers.tenant_state(FLAKY, "t1") is BreakerState.HALF_OPEN
    breakers.record(probe, failed=False)
    assert breakers.tenant_state(FLAKY, "t1") is BreakerState.CLOSED


def test_failed_probe_reopens() -> None:
    breakers = Breakers(BreakerConfig(min_calls=1, failure_rate=1.0, cooldown_s=0.01))
    clock = Clock(breakers)
    _run(breakers, FLAKY, "t", failed=True)
    clock.now += 0.02
    probe = breakers.allow(FLAKY, "t")
    assert isinstance(probe, Permit)
    breakers.record(probe, failed=True)
    assert breakers.tenant_state(FLAKY, "t") is BreakerState.OPEN
    assert isinstance(breakers.allow(FLAKY, "t"), Refusal)


def test_one_tenants_faults_open_only_its_own_breaker() -> None:
    breakers = Breakers(BreakerConfig(min_calls=20, failure_rate=0.5, cooldown_s=60))
    for _ in range(200):
        _run(breakers, FLAKY, "evil", failed=True)
    assert breakers.tenant_state(FLAKY, "evil") is BreakerState.OPEN
    refusal = breakers.allow(FLAKY, "evil")
    assert refusal == Refusal("tenant")
    # The version as a whole stays closed: one tenant can never open it for others.
    assert breakers.state(FLAKY) is BreakerState.CLOSED
    for _ in range(50):
        assert _run(breakers, FLAKY, "good", failed=False)
    assert breakers.states()[FLAKY] == (BreakerState.CLOSED, 1)


def test_a_version_failing_for_many_tenants_opens_for_everyone() -> None:
    breakers = Breakers(BreakerConfig(min_calls=20, failure_rate=0.5, cooldown_s=60, min_tenants=3))
    # A bad build: a handful of calls from each of several tenants, none of whom
    # reaches its own minimum, all failing.
    for round_ in range(7):
        for tenant in ("a", "b", "c"):
            _run(breakers, FLAKY, tenant, failed=True)
        if round_ < 6:
            assert breakers.state(FLAKY) is BreakerState.CLOSED
    assert breakers.state(FLAKY) is BreakerState.OPEN
    assert breakers.allow(FLAKY, "a-tenant-that-never-called") == Refusal("version")


def test_two_failing_tenants_are_not_many() -> None:
    breakers = Breakers(BreakerConfig(min_calls=4, failure_rate=0.5, cooldown_s=60, min_tenants=3))
    for _ in range(100):
        _run(breakers, FLAKY, "evil-1", failed=True)
        _run(breakers, FLAKY, "evil-2", failed=True)
    assert breakers.state(FLAKY) is BreakerState.CLOSED
    assert _run(breakers, FLAKY, "good", failed=False)


def test_version_probe_after_cooldown_decides_for_everyone() -> None:
    breakers = Breakers(
        BreakerConfig(min_calls=3, failure_rate=0.5, cooldown_s=0.02, min_tenants=3)
    )
    clock = Clock(breakers)
    for tenant in ("a", "b", "c"):
        _run(breakers, FLAKY, tenant, failed=True)
    assert breakers.state(FLAKY) is BreakerState.OPEN
    clock.now += 0.03
    probe = breakers.allow(FLAKY, "d")
    assert isinstance(probe, Permit) and probe.probe == "version"
    assert breakers.allow(FLAKY, "e") == Refusal("version")
    breakers.record(probe, failed=False)
    assert breakers.state(FLAKY) is BreakerState.CLOSED
    assert _run(breakers, FLAKY, "e", failed=False)


def test_tenant_breakers_are_capped() -> None:
    breakers = Breakers(BreakerConfig(max_tenant_breakers=100))
    for i in range(1000):
        _run(breakers, FLAKY, f"t{i}", failed=False)
    assert len(breakers._tenants) == 100


def test_owned_extensions_with_one_id_have_separate_breakers() -> None:
    breakers = Breakers(BreakerConfig(min_calls=2, failure_rate=0.5, cooldown_s=60, min_tenants=1))
    for _ in range(3):
        _run(breakers, ("acme", "rules", "1"), "acme", failed=True)
    assert breakers.state(("acme", "rules", "1")) is BreakerState.OPEN
    assert _run(breakers, ("globex", "rules", "1"), "globex", failed=False)


def test_switch_owner_narrows_an_extension_target() -> None:
    controls = Controls(None)
    controls.disable(Switch(extension_id="rules", owner="acme", reason="acme's build is bad"))
    assert controls.decide("rules", "1", "pure", "acme", "acme").disabled_reason is not None
    assert controls.decide("rules", "1", "pure", "globex", "globex").disabled_reason is None
    assert controls.decide("rules", "1", "pure", "acme", "").disabled_reason is None
    controls.disable(Switch(extension_id="echo", owner="_platform"))
    assert controls.decide("echo", "1", "pure", "t", "").disabled_reason is not None
    assert controls.decide("echo", "1", "pure", "t", "t").disabled_reason is None
    controls.disable(Switch(extension_id="any"))  # no owner: whoever owns it
    assert controls.decide("any", "1", "pure", "t", "t").disabled_reason is not None
    assert controls.decide("any", "1", "pure", "t", "").disabled_reason is not None
    with pytest.raises(ValueError):
        Switch(tenant_id="t", owner="t")


def test_the_file_refuses_an_expiry_it_would_not_honour() -> None:
    with pytest.raises(ValueError, match="expires_at belong to admin controls"):
        parse_controls("disabled:\n  - {tenant_id: t1, expires_at: '2026-12-02T00:00:00Z'}\n")
