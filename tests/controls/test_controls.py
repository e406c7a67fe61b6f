from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.controls import (
    BreakerConfig,
    Breakers,
    BreakerState,
    Ceilings,
    Controls,
    Degradation,
    Switch,
    Target,
)


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
    assert decision.ceilings == [Ceilings(timeout_ms=50)]
    path.write_text("disabled: [ {broken")
    assert controls.decide("x", "1", "read", "t").ceilings == [Ceilings(timeout_ms=50)]
    assert controls.file.reload_failures == 1
    assert controls.file.last_error


def test_admin_degradation_and_clearing() -> None:
    controls = Controls(None)
    controls.degrade(Degradation(risk_tier="pure", ceilings=Ceilings(fuel=10)))
    assert controls.decide("a", "1", "pure", "t").ceilings == [Ceilings(fuel=10)]
    controls.degrade(Degradation(risk_tier="pure", ceilings=Ceilings()))
    assert controls.decide("a", "1", "pure", "t").ceilings == []


def test_breaker_opens_on_failure_rate_and_closes_after_probe() -> None:
    breakers = Breakers(BreakerConfig(window_s=10, min_calls=4, failure_rate=0.5, cooldown_s=0.05))
    for _ in range(3):
        assert breakers.allow("flaky", "1")
        breakers.record("flaky", "1", failed=True)
    assert breakers.state("flaky", "1") is BreakerState.CLOSED  # below minimum volume
    breakers.record("flaky", "1", failed=True)
    assert breakers.state("flaky", "1") is BreakerState.OPEN
    assert not breakers.allow("flaky", "1")
    assert breakers.allow("healthy", "1")  # other extensions are unaffected
    time.sleep(0.06)
    assert breakers.allow("flaky", "1")  # the probe
    assert not breakers.allow("flaky", "1")  # only one probe at a time
    assert breakers.state("flaky", "1") is BreakerState.HALF_OPEN
    breakers.record("flaky", "1", failed=False)
    assert breakers.state("flaky", "1") is BreakerState.CLOSED


def test_failed_probe_reopens() -> None:
    breakers = Breakers(BreakerConfig(min_calls=1, failure_rate=1.0, cooldown_s=0.01))
    breakers.record("e", "1", failed=True)
    time.sleep(0.02)
    assert breakers.allow("e", "1")
    breakers.record("e", "1", failed=True)
    assert breakers.state("e", "1") is BreakerState.OPEN
    assert not breakers.allow("e", "1")
