"""Fair admission on the wire: one tenant's flood or slow upstream leaves the others served.

The runtime is served with default lane sizes (io: 8 threads + 64 waiting),
a policy file and a ``graph`` upstream that answers slowly for node ``slow``.
Callers authenticate with bearer tokens naming their tenant.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.asgi import create_app
from app.settings import Settings
from tests._clients import METHOD, connect_json
from tests._hostcall_keys import new_key, write_keys
from tests._servers import ROOT, route_server, thread_server
from tests._tokens import ISSUER, SECRET, caller_token

SLOW_UPSTREAM_S = 1.5


@dataclass
class Upstream:
    url: str
    slow_in_flight: int = 0
    lock: threading.Lock = threading.Lock()  # noqa: RUF009 - one upstream per module


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    state = Upstream(url="")

    async def get_node(request: Request) -> JSONResponse:
        body = await request.json()
        if body.get("id") == "slow":
            with state.lock:
                state.slow_in_flight += 1
            try:
                await asyncio.sleep(SLOW_UPSTREAM_S)
            finally:
                with state.lock:
                    state.slow_in_flight -= 1
        return JSONResponse({"id": body.get("id"), "name": "Node"})

    with route_server(Route("/graph/GetNode", get_node, methods=["POST"])) as url:
        state.url = url
        yield state


def _settings(tmp: Path, upstream: Upstream, **overrides: Any) -> Settings:
    policy_file = tmp / "risk-tiers.yaml"
    shutil.copy(ROOT / "config" / "risk-tiers.yaml", policy_file)
    values: dict[str, Any] = {
        "auth_enabled": True,
        "auth_hs256_secret": SecretStr(SECRET),
        "auth_issuer": ISSUER,
        "extensions_dir": ROOT / "examples" / "extensions",
        "module_cache_dir": tmp / "cache",
        "catalog_poll_interval_s": 0,
        "policy_file": policy_file,
        "hostcall_services": {"graph": upstream.url},
        "hostcall_signing_keys_file": write_keys(
            tmp / "hostcall-keys.json", (new_key(), "k-1", "current")
        ),
        "log_invocations": False,
        **overrides,
    }
    return Settings(**values)


def _body(tenant: str, extension: str = "enrich", node: str = "n1") -> dict[str, Any]:
    return {
        "extensionId": extension,
        "inputJson": {"id": node} if extension == "enrich" else {"tenant": tenant},
        "context": {"tenantId": tenant, "organizationId": "o1", "userId": "u1"},
    }


def _auth(tenant: str) -> dict[str, str]:
    return {
        "authorization": f"Bearer {caller_token(tenant, 'o1', 'u1', ttl=300)}",
        "content-type": "application/json",
    }


@pytest.fixture(scope="module")
def fair(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with thread_server(create_app(_settings(tmp_path_factory.mktemp("fair"), upstream))) as url:
        yield url


async def test_80_slow_host_calls_of_one_tenant_leave_another_tenants_enrich_served(
    fair: str, upstream: Upstream
) -> None:
    assert connect_json(fair, _body("quiet"), **_auth("quiet")).status_code == 200  # warm
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=fair, timeout=30, limits=limits) as client:

        async def call(tenant: str, node: str) -> httpx.Response:
            return await client.post(METHOD, json=_body(tenant, node=node), headers=_auth(tenant))

        noisy = [asyncio.ensure_future(call("noisy", "slow")) for _ in range(80)]
        # Wait until the noisy tenant's calls hold the upstream (its io threads are busy).
        for _ in range(100):
            if upstream.slow_in_flight >= 1:
                break
            await asyncio.sleep(0.02)
        assert upstream.slow_in_flight >= 1
        quiet = []
        for _ in range(4):  # the issue's reproduction: 4 of 4 were OVERLOADED
            response = await call("quiet", "n1")
            quiet.append(response)
            assert any(not task.done() for task in noisy), "the flood ended before the check"
        noisy_answers = await asyncio.gather(*noisy)

    for response in quiet:
        assert response.status_code == 200, response.text
        assert response.json()["outputJson"]["enriched"]["status"] == 200
    codes = [r.json()["code"] if r.status_code != 200 else "ok" for r in noisy_answers]
    overloaded = [r for r in noisy_answers if r.status_code == 429]
    # At most the tenant's 4 turns and 64 waiting calls (app/controls/_gate.py), and of
    # those at most its share of the io lane: the rest are refused at once, typed, with
    # a hint. (Admitted calls still waiting when their 3 s deadline passes time out.)
    assert len(overloaded) >= 80 - (4 + 64), codes
    assert set(codes) <= {"ok", "resource_exhausted", "deadline_exceeded"}, codes
    assert "ok" in codes
    for response in overloaded:
        assert response.json()["code"] == "resource_exhausted", response.text
        error = _invocation_error(response)
        assert error["kind"] == "OVERLOADED"
        assert error["retry_after_ms"] > 0
        assert int(response.headers["retry-after"]) >= 1
        assert "in progress" in response.json()["message"] or "share" in response.json()["message"]


@pytest.fixture(scope="module")
def limited(
    upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("limited")
    controls = tmp / "controls.yaml"
    controls.write_text("tenant_limits:\n  - {tenant_id: greedy, rate_per_s: 0.2, burst: 3}\n")
    settings = _settings(
        tmp,
        upstream,
        kill_switches_file=controls,
        metrics_tenant_label=True,
        rate_limit_tiers={"read": {"rate_per_s": 0.2, "burst": 2}},
    )
    with thread_server(create_app(settings)) as url:
        yield url, controls


def _invocation_error(response: httpx.Response) -> dict[str, Any]:
    """The InvocationError detail, decoded from its base64 ``value``."""
    detail = response.json()["details"][0]
    assert detail["type"] == "ameide.extensions.v1.InvocationError"
    value = base64.b64decode(detail["value"] + "==")
    message = runtime_pb.InvocationError.from_binary(value)
    return {"kind": message.kind.name, "retry_after_ms": message.retry_after_ms}


def test_a_tenant_over_its_rate_gets_overloaded_with_a_retry_hint_while_others_are_served(
    limited: tuple[str, Path],
) -> None:
    url, _ = limited
    greedy = [connect_json(url, _body("greedy", "echo"), **_auth("greedy")) for _ in range(6)]
    assert [r.status_code for r in greedy[:3]] == [200, 200, 200]  # the burst
    for response in greedy[3:]:
        assert response.status_code == 429, response.text  # resource_exhausted over Connect
        assert response.json()["code"] == "resource_exhausted"
        error = _invocation_error(response)
        assert error["kind"] == "OVERLOADED"
        assert error["retry_after_ms"] > 0
        assert int(response.headers["retry-after"]) >= 1
        assert "rate limit" in response.json()["message"]
    # Another tenant, at the default rate, is served meanwhile.
    calm = [connect_json(url, _body("calm", "echo"), **_auth("calm")) for _ in range(5)]
    assert [r.status_code for r in calm] == [200] * 5
    # Counted per tenant (the tenant label is on here).
    metrics = httpx.get(url + "/metrics").text
    assert 'extensions_runtime_rate_limited_total{tenant="greedy"} 3.0' in metrics
    assert 'tenant="calm"' not in metrics.split("rate_limited_total", 1)[1].split("# HELP")[0]


def test_the_rate_limit_is_taken_before_the_body_is_decoded(limited: tuple[str, Path]) -> None:
    url, controls = limited
    tenant = "early"
    headers = _auth(tenant)
    # A tiny limit for this tenant, through the hot-reloaded controls file.
    controls.write_text(
        "tenant_limits:\n"
        "  - {tenant_id: greedy, rate_per_s: 0.2, burst: 3}\n"
        "  - {tenant_id: early, rate_per_s: 0.01, burst: 1}\n"
    )
    time.sleep(1.2)  # the file is checked at most once a second
    first = connect_json(url, _body(tenant, "echo"), **headers)
    assert first.status_code == 200, first.text
    # A body that does not even parse: refused for the rate, never decoded.
    response = httpx.post(url + METHOD, content=b"{not json", headers=headers, timeout=30)
    assert response.json()["code"] == "resource_exhausted", response.text
    assert _invocation_error(response)["kind"] == "OVERLOADED"


def test_a_tier_limit_applies_per_tenant_once_the_extension_is_resolved(
    limited: tuple[str, Path],
) -> None:
    url, _ = limited
    answers = [connect_json(url, _body("reader"), **_auth("reader")) for _ in range(3)]
    assert [r.status_code for r in answers[:2]] == [200, 200]  # the read tier's burst
    assert answers[2].json()["code"] == "resource_exhausted"
    assert _invocation_error(answers[2])["kind"] == "OVERLOADED"
    assert "read extensions" in answers[2].json()["message"]
    # Another tenant's read bucket is its own; pure extensions are not tier-limited.
    assert connect_json(url, _body("reader2"), **_auth("reader2")).status_code == 200
    assert connect_json(url, _body("reader", "echo"), **_auth("reader")).status_code == 200


def test_without_the_tenant_label_one_unlabelled_counter(
    upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("unlabelled")
    settings = _settings(tmp, upstream, rate_limit_per_s=0.01, rate_limit_burst=1)
    with thread_server(create_app(settings)) as url:
        for tenant in ("a", "b"):
            assert connect_json(url, _body(tenant, "echo"), **_auth(tenant)).status_code == 200
            refused = connect_json(url, _body(tenant, "echo"), **_auth(tenant))
            assert _invocation_error(refused)["kind"] == "OVERLOADED"
        metrics = httpx.get(url + "/metrics").text
    assert "extensions_runtime_rate_limited_total 2.0" in metrics
    assert "rate_limited_total{tenant=" not in metrics


async def test_a_flooding_tenants_refusals_are_held_while_another_tenant_is_served(
    upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A caller retrying the instant it is refused must not turn refusals into a flood."""
    tmp = tmp_path_factory.mktemp("held")
    settings = _settings(
        tmp,
        upstream,
        rate_limit_per_s=0.01,
        rate_limit_burst=1,
        rate_limit_hold_s=5,
        rate_limit_hold_max_per_tenant=4,
    )
    with thread_server(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:

            async def call(tenant: str) -> httpx.Response:
                return await client.post(METHOD, json=_body(tenant, "echo"), headers=_auth(tenant))

            assert (await call("flood")).status_code == 200  # its one token
            flood = [asyncio.create_task(call("flood")) for _ in range(10)]
            # Four refusals are held (the tenant's cap); the other six are answered at once.
            for _ in range(300):
                metrics = (await client.get("/metrics")).text
                if "extensions_runtime_rate_limit_holding 4.0" in metrics and (
                    sum(task.done() for task in flood) == 6
                ):
                    break
                await asyncio.sleep(0.1)
            answered = [task.result() for task in flood if task.done()]
            assert len(answered) == 6, metrics
            assert {_invocation_error(r)["kind"] for r in answered} == {"OVERLOADED"}
            # Another tenant is served while the flood's four still wait.
            assert (await call("calm")).status_code == 200
            assert sum(not task.done() for task in flood) == 4
            held = await asyncio.gather(*flood)
            assert {_invocation_error(r)["kind"] for r in held} == {"OVERLOADED"}
            metrics = (await client.get("/metrics")).text
            assert "extensions_runtime_rate_limit_held_total 4.0" in metrics
            assert "extensions_runtime_rate_limit_holding 0.0" in metrics


def test_an_unexpected_error_in_admission_is_a_sanitized_internal_error(
    upstream: Upstream, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.controls import RateLimiter

    async def broken(*_args: object) -> None:
        raise RuntimeError("secret detail at /etc/private")

    monkeypatch.setattr(RateLimiter, "admit", broken)
    settings = _settings(tmp_path_factory.mktemp("broken"), upstream)
    with thread_server(create_app(settings)) as url:
        response = connect_json(url, _body("t", "echo"), **_auth("t"))
    assert response.status_code == 500
    assert response.json()["code"] == "internal"
    assert "secret" not in response.text and "/etc" not in response.text
    assert "request_id=" in response.json()["message"]


async def test_a_tenants_slow_host_calls_do_not_hold_the_turns_its_quick_calls_need(
    fair: str, upstream: Upstream
) -> None:
    """Turns are for work on the loop: a call waiting on its upstream lends its turn."""
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=fair, timeout=30, limits=limits) as client:

        async def call(extension: str, node: str = "n1") -> httpx.Response:
            body = _body("mixed", extension, node=node)
            return await client.post(METHOD, json=body, headers=_auth("mixed"))

        slow = [asyncio.ensure_future(call("enrich", "slow")) for _ in range(8)]
        for _ in range(100):  # more slow calls than the tenant's 4 turns hold its upstream
            if upstream.slow_in_flight >= 4:
                break
            await asyncio.sleep(0.02)
        assert upstream.slow_in_flight >= 4
        quick = [await call("echo") for _ in range(3)]
        assert any(not task.done() for task in slow), "the slow calls ended before the check"
        await asyncio.gather(*slow)
    assert [r.status_code for r in quick] == [200] * 3, [r.text for r in quick]
