"""The runtime applies a definition's risk tier: limit ceilings and the host-call bridge."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.catalog import build_definition, publish
from app.errors import ErrorKind, InvocationFailure
from app.hostcalls import PolicyStore
from app.invocation import ExecutionContext, Invocation
from app.runtime import Runtime
from app.settings import Settings
from tests._servers import ROOT
from tests.sandbox._modules import HOST_CALL

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


@pytest.mark.parametrize("method", ["GetNode\n", "GetNode/../../Drop"])
async def test_a_malformed_method_is_invalid_request_for_the_guest(
    tmp_path: Path, method: str
) -> None:
    # "graph/Get*" matched "graph/GetNode\n" too; the newline then broke the URL, the
    # httpx.InvalidURL escaped the bridge and the invocation ended as internal.
    policy = tmp_path / "tiers.yaml"
    policy.write_text("tiers: {read: {allow: ['graph/Get*']}}\n")
    settings = Settings(
        extensions_dir=tmp_path / "extensions",
        policy_file=policy,
        hostcall_services={"graph": "http://127.0.0.1:9"},
        dev=True,  # HS256 host-call tokens are dev-only
        hostcall_token_secret=SecretStr("relay-test-secret-0123456789abcdef0123"),
    )
    definition = build_definition(
        HOST_CALL,
        extension_id="relay",
        version="1.0.0",
        abi="raw",
        tier="read",
        limits={},
        host_calls=["graph/Get*"],
        config={},
    )
    await publish(settings, definition, HOST_CALL, promote=True)
    runtime = Runtime(settings)
    await runtime.start()
    try:
        request = {"service": "graph", "method": method, "body": {}}
        context = ExecutionContext(tenant_id="t1")
        outcome = await runtime.invoke(
            Invocation(context, "relay", "", json.dumps(request).encode())
        )
    finally:
        await runtime.close()
    assert json.loads(outcome.output)["error"]["kind"] == "invalid_request"
    assert runtime.host_bridge.counts.snapshot() == {("-", "-", "invalid_request"): 1}
