"""One limits type: what a definition asks, a tier's and an operator's ceilings, the settings."""

from __future__ import annotations

import json

import pytest

from app.catalog import ExtensionDefinition
from app.controls import parse_controls
from app.hostcalls import parse_policy
from app.limits import NO_LIMITS, DeclaredLimits
from app.sandbox import effective_limits
from app.settings import Settings

_DEFINITION = {
    "id": "x",
    "version": "1",
    "abi": "raw",
    "wasm_blob_ref": {"key": "x/1/module.wasm"},
    "sha256": "0" * 64,
}


def test_lowest_takes_each_field_from_whoever_states_the_least() -> None:
    asked = DeclaredLimits(fuel=1_000, timeout_ms=500)
    tier = DeclaredLimits(timeout_ms=200, memory_bytes=1 << 20)
    degraded = DeclaredLimits(fuel=2_000, max_host_calls=0)
    assert asked.lowest(tier, degraded, None) == DeclaredLimits(
        fuel=1_000, timeout_ms=200, memory_bytes=1 << 20, max_host_calls=0
    )
    assert asked.lowest() is asked  # nothing else stated: no new object on the hot path
    assert NO_LIMITS.lowest(tier) is tier
    assert NO_LIMITS.lowest().model_dump(exclude_none=True) == {}


def test_the_catalog_the_tiers_and_the_controls_read_the_same_type() -> None:
    definition = ExtensionDefinition.from_json(
        json.dumps({**_DEFINITION, "limits": {"fuel": 10, "log_bytes": 0}}).encode()
    )
    policy = parse_policy("tiers:\n  pure:\n    ceilings: {fuel: 5, timeout_ms: 100}\n")
    controls = parse_controls("degraded:\n  - {risk_tier: pure, ceilings: {fuel: 3}}\n")
    tier = policy.tier("pure")
    assert tier is not None
    stated = [definition.limits, tier.ceilings, controls.degraded[0].ceilings]
    assert all(type(limits) is DeclaredLimits for limits in stated)
    ceiling = tier.ceilings.lowest(controls.degraded[0].ceilings)
    got = effective_limits(definition.limits, Settings().limit_bounds, None, ceiling=ceiling)
    assert (got.fuel, got.timeout_ms, got.log_bytes) == (3, 100, 0)


@pytest.mark.parametrize("field", ["fuel", "memory_bytes", "timeout_ms", "output_bytes"])
def test_zero_or_negative_is_refused_wherever_it_is_stated(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ExtensionDefinition.from_json(json.dumps({**_DEFINITION, "limits": {field: 0}}).encode())
    with pytest.raises(ValueError, match=field):
        parse_policy(f"tiers:\n  pure:\n    ceilings: {{{field}: -1}}\n")
    with pytest.raises(ValueError, match=field):
        parse_controls(f"degraded:\n  - {{risk_tier: pure, ceilings: {{{field}: 0}}}}\n")
    with pytest.raises(ValueError, match=field):
        DeclaredLimits.model_validate({field: 0})


def test_no_host_calls_and_no_logs_are_limits_not_mistakes() -> None:
    assert DeclaredLimits(max_host_calls=0, log_bytes=0).max_host_calls == 0
    with pytest.raises(ValueError, match="max_host_calls"):
        DeclaredLimits(max_host_calls=-1)


def test_unknown_limit_names_are_refused() -> None:
    with pytest.raises(ValueError, match="cpu_ms"):
        parse_policy("tiers:\n  pure:\n    ceilings: {cpu_ms: 5}\n")


def test_the_settings_bounds_state_every_limit() -> None:
    bounds = Settings().limit_bounds
    for limits in (bounds.default, bounds.maximum):
        assert None not in limits.model_dump().values()
