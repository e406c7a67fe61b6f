"""Rollouts through the admin RPC on a real server: ListRollouts shows the shadow
results and a rollback with its reason; ClearRollback lets the promoted version
answer again; /metrics carries the counts the PrometheusRule alerts on."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from pydantic import SecretStr

from app.asgi import create_app
from app.errors import InvocationFailure
from app.gen.ameide.extensions.v1 import admin_pb
from app.gen.ameide.extensions.v1.admin_connect import ExtensionRuntimeAdminClient
from app.invocation import ExecutionContext, Invocation
from app.runtime import Runtime
from app.settings import Settings
from tests._clients import connect_json
from tests._servers import thread_server
from tests._tokens import ISSUER, SECRET, caller_token
from tests.integration._storage import S3Bucket
from tests.rollout.test_rollout import _point, _publish
from tests.sandbox._modules import ECHO, UNREACHABLE, raw

pytestmark = pytest.mark.integration
ADMIN = {"authorization": "Bearer " + caller_token(sub="ops", scope="extensions-runtime:admin")}
OTHER = raw("""
  (data (i32.const 256) "{}")
  (func (export "handle") (param i32 i32) (result i64)
    (call $pack (i32.const 256) (i32.const 2)))""")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Runtime, Path]]:
    root = tmp_path / "extensions"
    for version, wasm in (("1", ECHO), ("2", OTHER), ("4", UNREACHABLE)):
        asyncio.run(_publish(root, version, wasm))
    now = datetime.datetime.now(datetime.UTC).isoformat()
    _point(root, version="4", previous="1", promoted_at=now, candidate="2", shadow_per_mille=1000)
    settings = Settings(
        auth_hs256_secret=SecretStr(SECRET),
        auth_issuer=ISSUER,
        extensions_dir=root,
        module_cache_dir=tmp_path / "cache",
        breaker_min_calls=4,
        breaker_failure_rate=0.5,
    )
    runtime = Runtime(settings)
    with thread_server(create_app(settings, runtime=runtime)) as url:
        yield url, runtime, root


def _call(url: str, tenant: str) -> httpx.Response:
    auth = {"authorization": "Bearer " + caller_token(tenant)}
    return connect_json(url, {"extensionId": "rules", "inputJson": {"x": 1}}, **auth)


async def test_list_rollouts_shows_the_rollback_and_clear_undoes_it(
    served: tuple[str, Runtime, Path],
) -> None:
    url, _, _ = served
    answered: list[str] = []
    for _ in range(6):  # the promoted version 4 traps for three tenants: rolled back to 1
        for tenant in ("t1", "t2", "t3"):
            response = _call(url, tenant)
            answered.append(response.json().get("resolvedVersion") or response.json()["code"])
    assert "aborted" in answered and answered[-1] == "1"
    async with ExtensionRuntimeAdminClient(url) as admin:
        listing = await admin.list_rollouts(admin_pb.ListRolloutsRequest(), headers=ADMIN)
        (state,) = listing.rollouts
        assert (state.extension_id, state.promoted_version, state.previous_version) == (
            "rules",
            "4",
            "1",
        )
        assert state.candidate_version == "2" and state.shadow_per_mille == 1000
        assert state.rollback is not None
        assert (state.rollback.from_version, state.rollback.to_version) == ("4", "1")
        assert "failed for many tenants" in state.rollback.reason
        # Shadows ran while 4 answered (it trapped, the candidate answered): differ.
        assert state.shadow_differ >= 1
        assert all(d.live == "TRAP" and d.shadow == "ok" for d in state.diffs)
        assert all(len(d.shadow_sha256) == 64 and d.shadow_bytes == 2 for d in state.diffs)

        metrics = httpx.get(url + "/metrics").text
        assert "extensions_runtime_rolled_back_extensions 1.0" in metrics
        assert 'extensions_runtime_rollbacks_total{extension="rules",owner="_platform"} 1.0' in (
            metrics
        )

        cleared = await admin.clear_rollback(
            admin_pb.ClearRollbackRequest(extension_id="rules"), headers=ADMIN
        )
        assert cleared.cleared
        again = await admin.clear_rollback(
            admin_pb.ClearRollbackRequest(extension_id="rules"), headers=ADMIN
        )
        assert not again.cleared
    # The promoted version answers again (its breaker is still open: unavailable).
    assert _call(url, "t9").json()["code"] in ("unavailable", "aborted")
    assert json.loads(httpx.get(url + "/readyz").text)["ready"] is True


async def test_a_rollback_decided_in_one_process_is_followed_by_the_others(
    s3: S3Bucket,
) -> None:
    """Two runtimes on one real bucket: only the first sees the failures."""
    await s3.publish("rules", "1", ECHO, promote=True)
    await s3.publish("rules", "4", UNREACHABLE, promote=True)  # previous: 1
    settings = s3.settings(breaker_min_calls=4, breaker_failure_rate=0.5)
    async with Runtime(settings) as first, Runtime(settings) as second:
        for _ in range(4):
            for tenant in ("t1", "t2", "t3"):
                with contextlib.suppress(InvocationFailure):
                    await first.invoke(_invocation(tenant))
        assert first.rollouts.rolled_back(("", "rules")) is not None
        await first.rollouts.drain()  # the rollback is written for the fleet
        assert second.rollouts.rolled_back(("", "rules")) is None
        await second.fleet.sync()  # its next listing
        followed = second.rollouts.rolled_back(("", "rules"))
        assert followed is not None and (followed.from_version, followed.to_version) == ("4", "1")
        outcome = await second.invoke(_invocation("t9"))  # never failed here, rolled back
        assert outcome.resolved_version == "1"
        # Cleared through the second process: the first lifts it on its next listing.
        assert second.rollouts.clear(("", "rules")) is not None
        await second.rollouts.drain()
        await first.fleet.sync()
        assert first.rollouts.rolled_back(("", "rules")) is None


def _invocation(tenant: str) -> Invocation:
    return Invocation(
        context=ExecutionContext(tenant_id=tenant), extension_id="rules", version="", input=b"{}"
    )


async def test_set_rollout_rewrites_the_pointer_and_the_fleet_follows(s3: S3Bucket) -> None:
    """SetRollout on one process of two, on a real bucket: the candidate answers
    there at once (a 100% canary) and in the other process after its next listing;
    an empty candidate ends the rollout everywhere."""
    await s3.publish("rules", "1", ECHO, promote=True)
    await s3.publish("rules", "2", OTHER, promote=False)
    auth = {"auth_enabled": True, "auth_hs256_secret": SecretStr(SECRET), "auth_issuer": ISSUER}
    settings = s3.settings(**auth)
    async with Runtime(settings) as second:
        with thread_server(create_app(settings, runtime=Runtime(settings))) as url:
            async with ExtensionRuntimeAdminClient(url) as admin:
                changed = await admin.set_rollout(
                    admin_pb.SetRolloutRequest(
                        extension_id="rules", candidate_version="2", canary_percent=100
                    ),
                    headers=ADMIN,
                )
                state = changed.rollout
                assert (state.promoted_version, state.candidate_version) == ("1", "2")
                assert (state.canary_percent, state.shadow_per_mille) == (100, 0)
                assert _call(url, "t1").json()["resolvedVersion"] == "2"

                await _follow(second, "2")  # its next listing sees the announcement
                assert (await second.invoke(_invocation("t1"))).resolved_version == "2"

                ended = await admin.set_rollout(
                    admin_pb.SetRolloutRequest(extension_id="rules"), headers=ADMIN
                )
                assert ended.rollout.candidate_version == ""
                assert ended.rollout.canary_percent == 0
                assert _call(url, "t1").json()["resolvedVersion"] == "1"
                await _follow(second, None)
                assert (await second.invoke(_invocation("t1"))).resolved_version == "1"


async def _follow(runtime: Runtime, candidate: str | None) -> None:
    """Listings until the process has reloaded the pointer (a reload is a task)."""
    for _ in range(200):
        await runtime.fleet.sync()
        await asyncio.sleep(0.02)
        if runtime.catalog.pointers()[("", "rules")].candidate == candidate:
            return
    pytest.fail(f"the second process never followed the candidate {candidate}")


@pytest.mark.parametrize(
    ("request_fields", "says"),
    [
        ({"candidate_version": "4"}, "is the promoted version"),
        ({"candidate_version": "9"}, "no published version 9"),
        ({"candidate_version": "../2"}, "not a version"),
        ({"candidate_version": "2", "shadow_per_mille": 1001}, "at most 1000"),
        ({"candidate_version": "2", "canary_percent": 101}, "at most 100"),
        ({"canary_percent": 10}, "need a candidate_version"),
        ({"extension_id": "nothing-here", "candidate_version": "2"}, "nothing is promoted"),
    ],
)
async def test_set_rollout_refuses_what_it_cannot_do(
    served: tuple[str, Runtime, Path], request_fields: dict[str, object], says: str
) -> None:
    url, _, root = served
    before = (root / "rules" / "promoted.json").read_bytes()
    fields: dict[str, object] = {"extension_id": "rules", **request_fields}
    async with ExtensionRuntimeAdminClient(url) as admin:
        with pytest.raises(ConnectError) as refused:
            await admin.set_rollout(admin_pb.SetRolloutRequest(**fields), headers=ADMIN)  # type: ignore[arg-type]
    assert refused.value.code == Code.INVALID_ARGUMENT
    assert says in refused.value.message
    assert (root / "rules" / "promoted.json").read_bytes() == before


async def test_set_rollout_needs_the_admin_scope(served: tuple[str, Runtime, Path]) -> None:
    url, _, root = served
    before = (root / "rules" / "promoted.json").read_bytes()
    tenant = {"authorization": "Bearer " + caller_token("t1")}
    async with ExtensionRuntimeAdminClient(url) as admin:
        with pytest.raises(ConnectError) as refused:
            await admin.set_rollout(
                admin_pb.SetRolloutRequest(extension_id="rules", candidate_version="2"),
                headers=tenant,
            )
    assert refused.value.code == Code.PERMISSION_DENIED
    assert (root / "rules" / "promoted.json").read_bytes() == before
