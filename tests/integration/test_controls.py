"""Operator controls on a running service: admin RPC, switch file, breaker, metrics, traces."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from protobuf import Oneof
from pydantic import SecretStr

from app.asgi import create_app
from app.gen.ameide.extensions.v1 import admin_pb
from app.gen.ameide.extensions.v1.admin_connect import ExtensionRuntimeAdminClient
from app.runtime import Runtime
from app.settings import Settings
from tests._clients import connect_json
from tests._servers import ROOT, thread_server
from tests._tokens import ISSUER, SECRET, caller_token

ADMIN = {"authorization": "Bearer " + caller_token(sub="ops", scope="extensions-runtime:admin")}
CALLER = {"authorization": "Bearer " + caller_token("t1")}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Runtime, Path]]:
    switches = tmp_path_factory.mktemp("controls") / "kill-switches.yaml"
    switches.write_text("disabled: []\n")
    settings = Settings(
        auth_hs256_secret=SecretStr(SECRET),
        auth_issuer=ISSUER,
        extensions_dir=ROOT / "examples" / "extensions",
        kill_switches_file=switches,
        breaker_min_calls=4,
        breaker_failure_rate=0.5,
        breaker_cooldown_s=0.5,
    )
    runtime = Runtime(settings)
    runtime.controls.file._interval = 0  # re-read the file on every call in tests
    with thread_server(create_app(settings, runtime=runtime)) as url:
        yield url, runtime, switches


def _call(url: str, extension: str = "echo", **body: object) -> httpx.Response:
    return connect_json(url, {"extensionId": extension, "inputJson": {"x": 1}, **body}, **CALLER)


def _version_target(extension: str, version: str) -> admin_pb.ControlTarget:
    ref = admin_pb.VersionRef(extension_id=extension, version=version)
    return admin_pb.ControlTarget(target=Oneof("version", ref))


async def test_admin_disable_and_enable_a_version(served: tuple[str, Runtime, Path]) -> None:
    url, _, _ = served
    async with ExtensionRuntimeAdminClient(url) as admin:
        await admin.disable(
            admin_pb.DisableRequest(target=_version_target("echo", "1.0.0"), reason="bad build 7"),
            headers=ADMIN,
        )
        refused = _call(url)
        assert refused.json()["code"] == "failed_precondition"
        assert refused.json()["details"][0]["debug"]["kind"] == "ERROR_KIND_EXTENSION_DISABLED"
        assert "bad build 7" in refused.json()["message"]
        listing = await admin.list_extensions(admin_pb.ListExtensionsRequest(), headers=ADMIN)
        echo = next(e for e in listing.extensions if e.extension_id == "echo")
        assert echo.versions[0].disabled and echo.versions[0].disabled_reason == "bad build 7"
        removed = await admin.enable(
            admin_pb.EnableRequest(target=_version_target("echo", "1.0.0")), headers=ADMIN
        )
        assert removed.removed
    assert _call(url).status_code == 200


def test_switch_file_hot_reload_and_tier_switch(served: tuple[str, Runtime, Path]) -> None:
    url, _, switches = served
    switches.write_text("disabled:\n  - {risk_tier: pure, reason: tier maintenance}\n")
    for extension in ("echo", "spin", "hello"):
        response = _call(url, extension)
        assert response.json()["code"] == "failed_precondition", extension
        assert "tier maintenance" in response.json()["message"]
    switches.write_text("disabled: []\n")
    assert _call(url).status_code == 200


async def test_admin_requires_the_admin_scope(served: tuple[str, Runtime, Path]) -> None:
    url, _, _ = served
    from connectrpc.errors import ConnectError

    bad = "Bearer " + caller_token(sub="ops", scope="extensions-runtime:admin", ttl=-120)
    listed = ["extensions-runtime:admin"]  # only a space-separated string counts
    cases = [
        ({}, "unauthenticated"),
        ({"authorization": bad}, "unauthenticated"),
        (CALLER, "permission_denied"),
        ({"authorization": "Bearer " + caller_token(sub="ops", scope=listed)}, "permission_denied"),
        ({"authorization": "Bearer " + caller_token(sub="ops", scp=listed)}, "permission_denied"),
    ]
    async with ExtensionRuntimeAdminClient(url) as admin:
        for headers, code in cases:
            with pytest.raises(ConnectError) as info:
                await admin.list_extensions(admin_pb.ListExtensionsRequest(), headers=headers)
            assert info.value.code.value == code


@pytest.mark.parametrize(
    ("extension_id", "owner"),
    [
        ("echo\x00", ""),  # reached the storage path and came back as internal
        ("echo\n", ""),
        ("../echo", ""),
        ("e" * 1_000, ""),
        ("echo", "acme\x00"),
        ("echo", "../acme"),
    ],
)
async def test_refresh_catalog_validates_the_id(
    served: tuple[str, Runtime, Path], extension_id: str, owner: str
) -> None:
    url, _, _ = served
    from connectrpc.errors import ConnectError

    async with ExtensionRuntimeAdminClient(url) as admin:
        with pytest.raises(ConnectError) as info:
            request = admin_pb.RefreshCatalogRequest(extension_id=extension_id, owner=owner)
            await admin.refresh_catalog(request, headers=ADMIN)
        assert info.value.code.value == "invalid_argument"
        assert len(info.value.message) < 200
        refreshed = await admin.refresh_catalog(
            admin_pb.RefreshCatalogRequest(extension_id="echo"), headers=ADMIN
        )
    assert refreshed.definitions > 0


def test_flapping_extension_opens_its_breaker(served: tuple[str, Runtime, Path]) -> None:
    url, runtime, _ = served
    # hello refuses input that is not a JSON object (exit status 1 = TRAP).
    for _ in range(4):
        assert (
            connect_json(url, {"extensionId": "hello", "inputJson": [1]}, **CALLER).json()["code"]
            == "aborted"
        )
    fast = connect_json(url, {"extensionId": "hello", "inputJson": {"name": "A"}}, **CALLER)
    assert fast.json()["code"] == "unavailable"
    assert _call(url).status_code == 200  # other extensions are unaffected
    import time

    time.sleep(0.6)
    ok = connect_json(url, {"extensionId": "hello", "inputJson": {"name": "A"}}, **CALLER)
    assert ok.status_code == 200, ok.text
    key = ("", "hello", "1.0.0")
    assert runtime.breakers.tenant_state(key, "t1").name == "CLOSED"  # type: ignore[union-attr]


def test_metrics_exposition(served: tuple[str, Runtime, Path]) -> None:
    url, _, _ = served
    for _ in range(3):
        assert _call(url, "wordcount").status_code == 200
    text = httpx.get(url + "/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    invocations = families["extensions_runtime_invocations"]
    ok = [
        s
        for s in invocations.samples
        if s.name.endswith("_total")
        and s.labels.get("extension") == "wordcount"
        and s.labels.get("outcome") == "ok"
    ]
    assert ok and ok[0].value >= 3
    assert ok[0].labels["tier"] == "pure" and "tenant" not in ok[0].labels
    duration = families["extensions_runtime_invocation_duration_seconds"]
    counts = [
        s
        for s in duration.samples
        if s.name.endswith("_count") and s.labels.get("extension") == "wordcount"
    ]
    assert counts[0].value >= 3
    buckets = {s.labels["le"] for s in duration.samples if s.name.endswith("_bucket")}
    assert "0.0001" in buckets  # sub-millisecond resolution
    assert families["extensions_runtime_fuel_consumed"].samples
    hits = families["extensions_runtime_module_cache_hits"].samples[0].value
    assert hits >= 2
    assert "extensions_runtime_executor_queue_depth" in families
    assert "extensions_runtime_breaker_state" in families


async def test_admin_sees_owners_and_switches_one_owners_extension(
    served: tuple[str, Runtime, Path],
) -> None:
    url, _, _ = served
    async with ExtensionRuntimeAdminClient(url) as admin:
        listing = await admin.list_extensions(admin_pb.ListExtensionsRequest(), headers=ADMIN)
        assert {e.owner for e in listing.extensions} == {"_platform"}
        someone_elses = admin_pb.ControlTarget(target=Oneof("extension_id", "echo"), owner="acme")
        await admin.disable(admin_pb.DisableRequest(target=someone_elses), headers=ADMIN)
        assert _call(url).status_code == 200  # the platform echo is not acme's
        platform = admin_pb.ControlTarget(target=Oneof("extension_id", "echo"), owner="_platform")
        await admin.disable(admin_pb.DisableRequest(target=platform, reason="x"), headers=ADMIN)
        assert _call(url).json()["code"] == "failed_precondition"
        controls = await admin.list_controls(admin_pb.ListControlsRequest(), headers=ADMIN)
        assert sorted(c.target.owner for c in controls.disabled) == ["_platform", "acme"]
        for target in (someone_elses, platform):
            await admin.enable(admin_pb.EnableRequest(target=target), headers=ADMIN)
    assert _call(url).status_code == 200
