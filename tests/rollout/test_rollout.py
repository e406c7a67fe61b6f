"""Rollouts on a real runtime: shadow diffs, a looping shadow, canary by tenant, rollback.

Each test publishes versions of one extension into a local directory and
writes its promotion pointer with the rollout options, as Transformation
(or ``publish``) would; calls go through the whole pipeline.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.catalog import build_definition, publish
from app.controls import Switch
from app.errors import ErrorKind, InvocationFailure
from app.invocation import ExecutionContext, Invocation, Outcome
from app.rollout import canary_bucket
from app.runtime import Runtime
from app.settings import Settings
from tests.sandbox._modules import ECHO, INFINITE_LOOP, UNREACHABLE, raw

# A candidate that answers, but not what the promoted version answers.
CONSTANT = raw("""
  (data (i32.const 256) "{\\"v\\":2}")
  (func (export "handle") (param i32 i32) (result i64)
    (call $pack (i32.const 256) (i32.const 7)))""")
INPUT = b'{"name":"Ada"}'


async def _publish(root: Path, version: str, wasm: bytes, **limits: Any) -> None:
    definition = build_definition(
        wasm,
        extension_id="rules",
        version=version,
        abi="raw",
        tier="pure",
        limits=limits,
        host_calls=[],
        config={},
    )
    await publish(Settings(extensions_dir=root), definition, wasm, promote=False)


def _point(root: Path, **pointer: Any) -> None:
    (root / "rules" / "promoted.json").write_text(json.dumps(pointer))


@pytest.fixture
async def root(tmp_path: Path) -> Path:
    root = tmp_path / "extensions"
    await _publish(root, "1", ECHO)
    await _publish(root, "2", CONSTANT)
    await _publish(root, "3", INFINITE_LOOP, fuel=50_000_000)
    await _publish(root, "4", UNREACHABLE)
    return root


@pytest.fixture
def settings(root: Path, tmp_path: Path) -> Settings:
    return Settings(
        extensions_dir=root,
        module_cache_dir=tmp_path / "cache",
        catalog_poll_interval_s=0,
        breaker_min_calls=4,
        breaker_failure_rate=0.5,
        breaker_min_tenants=3,
        rollout_shadow_opt_out=["private-tenant"],
    )


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with Runtime(settings) as runtime:
        yield runtime


async def _call(runtime: Runtime, tenant: str = "t1") -> Outcome:
    return await runtime.invoke(
        Invocation(
            context=ExecutionContext(tenant_id=tenant),
            extension_id="rules",
            version="",
            input=INPUT,
        )
    )


async def _load(runtime: Runtime) -> None:
    await runtime.refresh_extension("rules")


async def test_a_differing_candidate_is_reported_while_callers_get_the_promoted(
    root: Path, runtime: Runtime
) -> None:
    _point(root, version="1", candidate="2", shadow_per_mille=1000)
    await _load(runtime)
    for _ in range(5):
        outcome = await _call(runtime)
        assert (outcome.output, outcome.resolved_version) == (INPUT, "1")
        await runtime.rollouts.drain()
    await _call(runtime, tenant="private-tenant")  # opted out: never shadowed
    await runtime.rollouts.drain()
    assert runtime.rollouts.shadow_counts(("", "rules")) == {("1", "2", "differ"): 5}
    diffs = runtime.rollouts.diffs(("", "rules"))
    assert len(diffs) == 5
    diff = diffs[0]
    assert (diff.live, diff.shadow, diff.input_bytes) == ("ok", "ok", len(INPUT))
    assert (diff.live_bytes, diff.shadow_bytes) == (len(INPUT), 7)
    assert diff.live_sha256 != diff.shadow_sha256
    assert not hasattr(diff, "output")  # redacted: sizes, kinds and hashes only


async def test_an_identical_candidate_matches(root: Path, runtime: Runtime) -> None:
    await _publish(root, "5", ECHO)
    _point(root, version="1", candidate="5", shadow_per_mille=1000)
    await _load(runtime)
    for _ in range(3):
        await _call(runtime)
        await runtime.rollouts.drain()
    assert runtime.rollouts.shadow_counts(("", "rules")) == {("1", "5", "match"): 3}


async def test_a_looping_shadow_never_holds_or_fails_live_calls(
    root: Path, runtime: Runtime
) -> None:
    _point(root, version="1", candidate="3", shadow_per_mille=1000)
    await _load(runtime)
    await _call(runtime)  # compiles both
    await runtime.rollouts.drain()
    inline_before = runtime.fastpath.inline_runs
    calls = 30
    for _ in range(calls):
        outcome = await _call(runtime)  # never fails, always the promoted answer
        assert (outcome.output, outcome.resolved_version) == (INPUT, "1")
        assert runtime.rollouts.shadows_in_flight <= 2  # the bound, never past it
    # Count, not time: no shadow ever ran inline on the loop (each would add to the
    # inline count, past the live calls'), and the live calls stayed on the fast
    # path while a looping candidate kept the low-priority lane busy (a busy CI
    # machine pushes some of them to the pool: that is noise, not a shadow).
    inline = runtime.fastpath.inline_runs - inline_before
    assert calls * 0.5 <= inline <= calls
    await runtime.rollouts.drain()
    counts = runtime.rollouts.shadow_counts(("", "rules"))
    ran = counts.get(("1", "3", "differ"), 0)
    dropped = counts.get(("1", "3", "dropped"), 0)
    assert ran + dropped == calls + 1  # every sampled call accounted for
    assert ran >= 1
    assert runtime.rollouts.diffs(("", "rules"))[-1].shadow == "FUEL_EXHAUSTED"


async def test_one_tenant_cannot_take_every_shadow_slot(root: Path, runtime: Runtime) -> None:
    """Two slots, at most one a tenant: a tenant whose calls keep a looping shadow
    busy leaves the other slot to another tenant's sample."""
    _point(root, version="1", candidate="3", shadow_per_mille=1000)
    await _load(runtime)
    await _call(runtime, "warm")  # compiles both
    await runtime.rollouts.drain()
    for _ in range(5):
        await _call(runtime, "hog")
    assert runtime.rollouts.shadows_in_flight == 1  # the hog's one slot, still looping
    await _call(runtime, "fair")
    assert runtime.rollouts.shadows_in_flight == 2  # the other tenant got the other
    await runtime.rollouts.drain()
    counts = runtime.rollouts.shadow_counts(("", "rules"))
    assert counts.get(("1", "3", "dropped"), 0) >= 4 - 1  # the hog's others (one may rerun)
    assert counts.get(("1", "3", "differ"), 0) + counts.get(("1", "3", "dropped"), 0) == 7


async def test_a_canary_splits_tenants_stably(root: Path, runtime: Runtime) -> None:
    _point(root, version="1", candidate="2", canary_percent=50)
    await _load(runtime)
    tenants = [f"tenant-{i}" for i in range(200)]
    chosen = {t: runtime.rollouts.resolve(t, "rules", "").version for t in tenants}
    share = sum(v == "2" for v in chosen.values()) / len(tenants)
    assert 0.35 <= share <= 0.65, share
    for tenant in tenants[:20]:  # stable: the same tenant, the same version
        assert runtime.rollouts.resolve(tenant, "rules", "").version == chosen[tenant]
        assert chosen[tenant] == ("2" if canary_bucket(tenant, ("", "rules")) < 50 else "1")
    canaried = next(t for t in tenants if chosen[t] == "2")
    assert (await _call(runtime, canaried)).resolved_version == "2"  # what the caller sees
    assert (await _call(runtime, next(t for t in tenants if chosen[t] == "1"))).output == INPUT


async def _fail_for_many_tenants(runtime: Runtime) -> None:
    for round_ in range(4):
        for tenant in ("t1", "t2", "t3"):
            try:
                outcome = await _call(runtime, tenant)
            except InvocationFailure as failure:
                if failure.kind is ErrorKind.EXTENSION_DISABLED:
                    return  # rolled back onto a version an operator switched off
                assert failure.kind in (ErrorKind.TRAP, ErrorKind.UNAVAILABLE), failure
            else:
                assert outcome.resolved_version == "1", round_
                return


async def test_a_promotion_that_traps_for_everyone_is_rolled_back(
    root: Path, runtime: Runtime
) -> None:
    now = datetime.datetime.now(datetime.UTC).isoformat()
    _point(root, version="4", previous="1", promoted_at=now, rollback_window_s=600)
    await _load(runtime)
    await _fail_for_many_tenants(runtime)
    record = runtime.rollouts.rolled_back(("", "rules"))
    assert record is not None and (record.from_version, record.to_version) == ("4", "1")
    assert "failed for many tenants" in record.reason
    for tenant in ("t1", "t2", "t9"):  # every tenant, even one that never failed
        outcome = await _call(runtime, tenant)
        assert (outcome.output, outcome.resolved_version) == (INPUT, "1")
    families = {f.name: f for f in runtime.rollouts.metric_families()}
    assert families["rollbacks"].samples == [(("_platform", "rules"), 1.0)]
    assert families["rolled_back_extensions"].samples == [((), 1.0)]
    # A person clears it: the promoted version is served again, and not rolled
    # back again by the same breaker.
    assert runtime.rollouts.clear(("", "rules")) is not None
    with pytest.raises(InvocationFailure):
        await _call(runtime)
    assert runtime.rollouts.rolled_back(("", "rules")) is None


async def test_a_rollback_outside_the_window_does_not_happen(root: Path, runtime: Runtime) -> None:
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
    _point(root, version="4", previous="1", promoted_at=long_ago.isoformat(), rollback_window_s=600)
    await _load(runtime)
    await _fail_for_many_tenants(runtime)
    assert runtime.rollouts.rolled_back(("", "rules")) is None


async def test_a_kill_switch_on_the_previous_version_wins_over_rollback(
    root: Path, runtime: Runtime
) -> None:
    now = datetime.datetime.now(datetime.UTC).isoformat()
    _point(root, version="4", previous="1", promoted_at=now)
    await _load(runtime)
    runtime.controls.disable(Switch(extension_id="rules", version="1", reason="v1 is bad too"))
    await _fail_for_many_tenants(runtime)
    assert runtime.rollouts.rolled_back(("", "rules")) is not None
    with pytest.raises(InvocationFailure) as info:
        await _call(runtime, "t9")
    assert info.value.kind is ErrorKind.EXTENSION_DISABLED
    assert "v1 is bad too" in info.value.message
