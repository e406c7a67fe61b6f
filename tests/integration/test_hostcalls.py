"""Host calls end to end: the ``enrich`` example calls a real upstream over loopback.

The runtime is served with a policy file, a ``graph`` service pointing at a
tiny Starlette app that records what it receives, and a host-call secret; the
caller authenticates with a bearer token naming its tenant.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.asgi import create_app
from app.hostcalls import verify_token
from app.settings import Settings
from tests._clients import connect_json
from tests._servers import ROOT, thread_server
from tests._tokens import SECRET, caller_token

HOSTCALL_SECRET = "integration-host-call-secret-0123456789abcdef"
CONTEXT = {"tenantId": "t1", "organizationId": "o1", "userId": "u1", "requestId": "req-hc-1"}
WITHOUT_GRAPH = """
tiers:
  read:
    description: reads, but not from the graph
    allow: ["search/Get*"]
"""


@dataclass
class Upstream:
    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.seen)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    recorded = Upstream(url="")

    async def get_node(request: Request) -> JSONResponse:
        body = await request.json()
        with recorded.lock:
            recorded.seen.append({"headers": dict(request.headers), "body": body})
        return JSONResponse({"id": body.get("id"), "name": "Node One"})

    async def ready(_: Request) -> JSONResponse:
        return JSONResponse({"ready": True})

    app = Starlette(
        routes=[
            Route("/graph/GetNode", get_node, methods=["POST"]),
            Route("/readyz", ready, methods=["GET"]),
        ]
    )
    with thread_server(app) as url:
        recorded.url = url
        yield recorded


@dataclass
class Served:
    url: str
    settings: Settings
    policy_file: Path


@pytest.fixture(scope="module")
def served(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("hostcalls")
    policy_file = tmp / "risk-tiers.yaml"
    shutil.copy(ROOT / "config" / "risk-tiers.yaml", policy_file)
    settings = Settings(
        auth_enabled=True,
        auth_hs256_secret=SecretStr(SECRET),
        extensions_dir=ROOT / "examples" / "extensions",
        module_cache_dir=tmp / "cache",
        catalog_poll_interval_s=0,
        policy_file=policy_file,
        hostcall_services={"graph": upstream.url},
        hostcall_token_secret=SecretStr(HOSTCALL_SECRET),
    )
    with thread_server(create_app(settings)) as url:
        yield Served(url=url, settings=settings, policy_file=policy_file)


def _enrich(served: Served, node_id: str = "n1") -> Any:
    response = connect_json(
        served.url,
        {"extensionId": "enrich", "inputJson": {"id": node_id}, "context": CONTEXT},
        authorization=f"Bearer {caller_token('t1', 'o1', 'u1')}",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["metrics"]["hostCalls"] == 1
    return body["outputJson"]


def test_enrich_merges_the_upstream_answer(served: Served, upstream: Upstream) -> None:
    before = upstream.count()
    output = _enrich(served)
    assert output == {
        "input": {"id": "n1"},
        "enriched": {"status": 200, "body": {"id": "n1", "name": "Node One"}},
    }
    assert upstream.count() == before + 1
    seen = upstream.seen[-1]
    assert seen["body"] == {"id": "n1"}
    headers = seen["headers"]
    assert headers["content-type"] == "application/json"
    assert headers["connect-protocol-version"] == "1"
    assert 0 < int(headers["connect-timeout-ms"]) <= served.settings.hostcall_timeout_ms
    assert headers["x-request-id"] == "req-hc-1"

    token = headers["authorization"].removeprefix("Bearer ")
    claims = verify_token(served.settings, token, audience="graph")
    assert claims["tenant_id"] == "t1"
    assert claims["organization_id"] == "o1"
    assert claims["sub"] == "u1"
    assert claims["extension_id"] == "enrich"
    assert claims["extension_version"] == "1.0.0"
    assert claims["request_id"] == "req-hc-1"
    assert claims["exp"] - claims["iat"] == served.settings.hostcall_token_ttl_s


def test_the_guest_never_sees_the_token(served: Served, upstream: Upstream) -> None:
    output = json.dumps(_enrich(served, "n2"))
    token = upstream.seen[-1]["headers"]["authorization"].removeprefix("Bearer ")
    assert token not in output
    assert upstream.url not in output


def test_a_hot_reloaded_policy_denies_and_the_upstream_sees_nothing(
    served: Served, upstream: Upstream
) -> None:
    assert _enrich(served)["enriched"]["status"] == 200  # allowed before the change
    original = served.policy_file.read_text()
    served.policy_file.write_text(WITHOUT_GRAPH)
    try:
        time.sleep(1.2)  # the runtime checks the file at most once a second
        before = upstream.count()
        output = _enrich(served)
        assert output["input"] == {"id": "n1"}
        assert output["enriched"]["error"]["kind"] == "denied", output
        assert upstream.count() == before, "a denied call reached the upstream"
    finally:
        served.policy_file.write_text(original)
        time.sleep(1.2)
    assert _enrich(served)["enriched"]["status"] == 200  # and allowed again after
