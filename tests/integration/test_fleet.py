"""Three separately started service processes sharing one SeaweedFS act as one fleet.

An admin switch sent to one is refused by all three, a promotion webhook sent
to one is served by all three, a process started after a switch has it before
it is ready, a tenant's rate holds across the three, and with storage stopped
``/readyz`` says the control state is stale, then recovers. Each propagation
time is measured and printed (``pytest -s``), and held to the bound
docs/operations.md documents: two listing intervals and one second.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from protobuf import Oneof

from app.catalog import sign
from app.gen.ameide.extensions.v1 import admin_pb
from app.gen.ameide.extensions.v1.admin_connect import ExtensionRuntimeAdminClient
from tests._clients import connect_json
from tests._s3 import SeaweedS3
from tests._servers import cli_server
from tests._tokens import ISSUER, SECRET, caller_token
from tests.integration._storage import WEBHOOK_SECRET, S3Bucket, example_module
from tests.integration.test_s3_storage import _post_event, _promotion_event

pytestmark = pytest.mark.integration

INTERVAL_S = 1.0  # the default fleet_sync_interval_s
BOUND_S = 2 * INTERVAL_S + 1.0  # the documented propagation bound
STALE_AFTER_S = 4.0
RATE, BURST = 10.0, 3
ADMIN = {"authorization": "Bearer " + caller_token(sub="ops", scope="extensions-runtime:admin")}


@dataclass
class Trio:
    bucket: S3Bucket
    urls: list[str]
    env: dict[str, str]


def _env(bucket: S3Bucket, switches: Path) -> dict[str, str]:
    return bucket.env(
        auth_enabled="true",
        auth_hs256_secret=SECRET,
        auth_issuer=ISSUER,
        kill_switches_file=str(switches),
        control_stale_after_s=str(STALE_AFTER_S),
        log_format="json",
    )


@pytest.fixture(scope="module")
def trio(s3_server: SeaweedS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    root = tmp_path_factory.mktemp("fleet")
    bucket = S3Bucket(s3_server, f"fleet-{uuid.uuid4().hex[:12]}", root / "module-cache")
    asyncio.run(bucket.create())
    asyncio.run(bucket.publish("echo", "1", example_module("echo"), promote=True))
    switches = root / "kill-switches.yaml"
    switches.write_text(
        f"tenant_limits:\n  - {{tenant_id: metered, rate_per_s: {RATE}, burst: {BURST}}}\n"
    )
    env = _env(bucket, switches)
    with contextlib.ExitStack() as stack:
        # Three processes, each its own server on its own port: as three pods.
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            futures = [
                pool.submit(
                    stack.enter_context,
                    cli_server("uvicorn", env=env, dev=False, log_path=root / f"p{i}.log"),
                )
                for i in range(3)
            ]
            urls = [f.result() for f in futures]
        yield Trio(bucket, urls, env)


def _call(url: str, tenant: str = "t1", version: str = "") -> httpx.Response:
    body: dict[str, object] = {"extensionId": "echo", "inputJson": {"x": 1}}
    if version:
        body["version"] = version
    auth = {"authorization": "Bearer " + caller_token(tenant)}
    return connect_json(url, body, **auth)


def _refused(url: str) -> bool:
    response = _call(url)
    if response.status_code == 200:
        return False
    assert response.json()["details"][0]["debug"]["kind"] == "ERROR_KIND_EXTENSION_DISABLED"
    return True


def _until_all(urls: list[str], holds: Callable[[str], bool], timeout: float = 30) -> list[float]:
    """Seconds from now until ``holds(url)`` first held, per url."""
    start = time.monotonic()
    reached: dict[str, float] = {}
    while len(reached) < len(urls) and time.monotonic() - start < timeout:
        for url in urls:
            if url not in reached and holds(url):
                reached[url] = time.monotonic() - start
        time.sleep(0.05)
    assert len(reached) == len(urls), f"only {len(reached)} of {len(urls)} got there"
    return [reached[u] for u in urls]


def _version_target() -> admin_pb.ControlTarget:
    ref = admin_pb.VersionRef(extension_id="echo", version="1")
    return admin_pb.ControlTarget(target=Oneof("version", ref))


async def test_an_admin_disable_sent_to_one_is_refused_by_all(trio: Trio) -> None:
    first, *_ = trio.urls
    assert not any(_refused(u) for u in trio.urls)
    async with ExtensionRuntimeAdminClient(first) as admin:
        await admin.disable(
            admin_pb.DisableRequest(target=_version_target(), reason="bad build 9"), headers=ADMIN
        )
        took = _until_all(trio.urls, _refused)
        print(f"\nadmin disable reached 3 processes in {[f'{t:.2f}' for t in took]} s")
        assert took[0] < INTERVAL_S  # the receiving process applied it at once
        assert max(took) <= BOUND_S
        # Every process lists it, with who set it.
        for url in trio.urls:
            async with ExtensionRuntimeAdminClient(url) as other:
                listing = await other.list_controls(admin_pb.ListControlsRequest(), headers=ADMIN)
            assert [(c.reason, c.source, c.set_by) for c in listing.disabled] == [
                ("bad build 9", "admin", "ops")
            ]
        # Lifted through another process, lifted everywhere.
        async with ExtensionRuntimeAdminClient(trio.urls[2]) as other:
            lifted = await other.enable(
                admin_pb.EnableRequest(target=_version_target()), headers=ADMIN
            )
        assert lifted.removed
        took = _until_all(trio.urls, lambda u: not _refused(u))
        print(f"admin enable reached 3 processes in {[f'{t:.2f}' for t in took]} s")
        assert max(took) <= BOUND_S


async def test_a_promotion_webhook_sent_to_one_is_served_by_all(trio: Trio) -> None:
    bucket = trio.bucket
    await bucket.publish("echo", "2", example_module("echo"), promote=False)
    await bucket.put("echo/promoted.json", b'{"version": "2"}')  # Transformation's pointer
    # Catalog polling is off in these processes: only the fleet can carry it.
    assert all(_call(u).json()["resolvedVersion"] == "1" for u in trio.urls)
    body = _promotion_event("echo", "2")
    answer = _post_event(trio.urls[0], body, sign(body, WEBHOOK_SECRET.encode()))
    assert answer.status_code == 200, answer.text
    took = _until_all(trio.urls, lambda u: _call(u).json()["resolvedVersion"] == "2")
    print(f"\npromotion reached 3 processes in {[f'{t:.2f}' for t in took]} s")
    assert max(took) <= BOUND_S


def test_a_process_started_after_a_disable_has_it_before_it_is_ready(trio: Trio) -> None:
    asyncio.run(_admin_disable(trio.urls[1], "t-late"))
    # A new process (a restarted pod): the first call after /readyz is 200 is refused.
    with cli_server("uvicorn", env=trio.env, dev=False) as url:
        response = _call(url, tenant="t-late")
        assert response.json()["code"] == "failed_precondition", response.text
        assert "tenant paused" in response.json()["message"]
        assert _call(url, tenant="t1").status_code == 200  # and only that tenant


async def _admin_disable(url: str, tenant: str) -> None:
    target = admin_pb.ControlTarget(target=Oneof("tenant_id", tenant))
    async with ExtensionRuntimeAdminClient(url) as admin:
        await admin.disable(
            admin_pb.DisableRequest(target=target, reason="tenant paused"), headers=ADMIN
        )


def _gauge(url: str, name: str) -> float:
    for family in text_string_to_metric_families(httpx.get(url + "/metrics").text):
        if family.name == name:
            return float(family.samples[0].value)
    raise AssertionError(f"{name} not exported")


def test_a_tenant_rate_holds_across_the_three(trio: Trio) -> None:
    _until_all(trio.urls, lambda u: _gauge(u, "extensions_runtime_fleet_processes") == 3)
    auth = {"authorization": "Bearer " + caller_token("metered")}
    body = {"extensionId": "echo", "inputJson": {"x": 1}}
    seconds = 4.0

    def hammer(url: str) -> tuple[int, int]:
        ok = refused = 0
        with httpx.Client(timeout=10) as client:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                response = client.post(
                    url + "/ameide.extensions.v1.WasmExtensionRuntime/InvokeExtension",
                    json=body,
                    headers=auth,
                )
                if response.status_code == 200:
                    ok += 1
                else:
                    assert response.json()["code"] == "resource_exhausted", response.text
                    refused += 1
        return ok, refused

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(hammer, trio.urls * 2))  # two callers on each process
    ok = sum(r[0] for r in results)
    refused = sum(r[1] for r in results)
    # Documented: at most the rate over the time, plus the burst (at least one call
    # per process), plus one process's share while the fleet's size is learnt.
    ceiling = RATE * seconds * (1 + 1 / 3) + max(BURST, 3)
    print(
        f"\nrate {RATE}/s over 3 processes for {seconds} s: {ok} admitted, {refused} refused"
        f" (ceiling {ceiling:.0f}; one process alone would admit up to {RATE * seconds:.0f})"
    )
    assert refused > 0  # the callers asked for more than the rate
    assert RATE * seconds * 0.5 <= ok <= ceiling


def test_stopped_storage_makes_readyz_say_stale_then_recovers(
    trio: Trio, s3_server: SeaweedS3
) -> None:
    url = trio.urls[0]
    assert httpx.get(url + "/readyz").status_code == 200
    stopped = time.monotonic()  # storage stops answering as the stop begins
    s3_server.stop()
    try:
        while time.monotonic() - stopped < 30:
            ready = httpx.get(url + "/readyz")
            if ready.status_code == 503:
                break
            time.sleep(0.1)
        unready_after = time.monotonic() - stopped
        assert ready.status_code == 503
        (reason,) = ready.json()["reasons"]
        assert reason.startswith("control state is stale"), reason
        print(
            f"\nstorage stopped: /readyz 503 after {unready_after:.1f} s"
            f" (stale_after {STALE_AFTER_S} s)"
        )
        # Stale is "older than stale_after", never before it.
        assert unready_after >= STALE_AFTER_S - INTERVAL_S * 1.5
        assert _call(url).status_code == 200  # cached versions are still served meanwhile
    finally:
        s3_server.start()
    recovered = time.monotonic()
    _until_all([url], lambda u: httpx.get(u + "/readyz").status_code == 200)
    print(f"storage back: /readyz 200 after {time.monotonic() - recovered:.1f} s")
