"""The runtime applies a definition's risk tier: limit ceilings and the host-call bridge."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.errors import ErrorKind, InvocationFailure
from app.hostcalls import PolicyStore
from app.invocation import ExecutionContext, Invocation
from app.runtime import Runtime
from app.settings import Settings
from tests._servers import ROOT

ENRICH = Invocation(
    context=ExecutionContext(tenant_id="t1", request_id="r1"),
    extension_id="enrich",
    version="",
    input=b'{"id": "n1"}',
)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    policy = tmp_path / "tiers.yaml"
    policy.write_text("tiers: {read: {allow: ['graph/GetNode']}}\n")
    runtime = Runtime(
        Settings(
            extensions_dir=ROOT / "examples" / "extensions",
            catalog_poll_interval_s=0,
            policy_file=policy,
        )
    )
    runtime.policy = PolicyStore(policy, check_interval_s=0)  # reload on every invocation
    await runtime.start()
    yield runtime
    await runtime.close()


def _set_policy(runtime: Runtime, text: str) -> None:
    assert runtime.policy.path is not None
    runtime.policy.path.write_text(text)


async def test_allowed_but_unconfigured_service_is_denied(runtime: Runtime) -> None:
    outcome = await runtime.invoke(ENRICH)
    enriched = json.loads(outcome.output)["enriched"]
    assert enriched["error"]["kind"] == "denied"
    assert outcome.metrics.host_calls == 1
    assert runtime.host_bridge.counts.snapshot() == {("_other", "_other", "denied"): 1}


async def test_tier_ceiling_on_host_calls_applies(runtime: Runtime) -> None:
    _set_policy(runtime, "tiers: {read: {allow: ['*/*'], ceilings: {max_host_calls: 0}}}\n")
    outcome = await runtime.invoke(ENRICH)
    enriched = json.loads(outcome.output)["enriched"]
    assert enriched["error"]["kind"] == "budget_exhausted"  # the sandbox's budget, not the bridge
    assert runtime.host_bridge.counts.snapshot() == {}


async def test_tier_ceiling_on_fuel_applies(runtime: Runtime) -> None:
    _set_policy(runtime, "tiers: {read: {allow: [], ceilings: {fuel: 50}}}\n")
    with pytest.raises(InvocationFailure) as failure:
        await runtime.invoke(ENRICH)
    assert failure.value.kind is ErrorKind.FUEL_EXHAUSTED


async def test_unknown_tier_runs_but_denies_host_calls(runtime: Runtime) -> None:
    _set_policy(runtime, "tiers: {pure: {allow: []}}\n")
    outcome = await runtime.invoke(ENRICH)
    assert json.loads(outcome.output)["enriched"]["error"]["kind"] == "denied"
