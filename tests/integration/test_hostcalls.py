"""Host calls end to end: the ``enrich`` example calls a real upstream over loopback.

The runtime is served with a policy file, a ``graph`` service pointing at a
tiny Starlette app that records what it receives, and host-call signing keys
from a file (as the chart mounts them); the caller authenticates with a bearer
token naming its tenant. The tokens the upstream receives are verified the way
a platform service does: with the public keys fetched from the runtime's JWKS
endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.asgi import create_app
from app.hostcalls import JWKS_PATH, verify_token
from app.settings import Settings
from tests._clients import connect_json
from tests._hostcall_keys import new_key, write_keys
from tests._servers import ROOT, route_server, thread_server
from tests._tokens import ISSUER, SECRET, caller_token

FIRST_KEY = new_key()
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
        if body.get("id") == "reflect":  # an upstream that echoes the request's headers
            return JSONResponse(
                {"id": "reflect", "headers": dict(request.headers)},
                headers={"x-echo-authorization": request.headers["authorization"]},
            )
        return JSONResponse({"id": body.get("id"), "name": "Node One"})

    with route_server(Route("/graph/GetNode", get_node, methods=["POST"])) as url:
        recorded.url = url
        yield recorded


@dataclass
class Served:
    url: str
    settings: Settings
    policy_file: Path
    keys_file: Path


@pytest.fixture(scope="module")
def served(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("hostcalls")
    policy_file = tmp / "risk-tiers.yaml"
    shutil.copy(ROOT / "config" / "risk-tiers.yaml", policy_file)
    keys_file = write_keys(tmp / "hostcall-keys.json", (FIRST_KEY, "k-2026-11", "current"))
    settings = Settings(
        auth_enabled=True,
        auth_hs256_secret=SecretStr(SECRET),
        auth_issuer=ISSUER,
        extensions_dir=ROOT / "examples" / "extensions",
        module_cache_dir=tmp / "cache",
        catalog_poll_interval_s=0,
        policy_file=policy_file,
        hostcall_services={"graph": upstream.url},
        hostcall_signing_keys_file=keys_file,
    )
    with thread_server(create_app(settings)) as url:
        yield Served(url=url, settings=settings, policy_file=policy_file, keys_file=keys_file)


def _jwks(served: Served) -> dict[str, Any]:
    """What a platform service fetches: no credentials needed, public keys only."""
    response = httpx.get(served.url + JWKS_PATH, timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "public, max-age=300"
    document: dict[str, Any] = response.json()
    return document


def _verify(served: Served, token: str) -> dict[str, Any]:
    issuer = served.settings.hostcall_token_issuer
    return verify_token(token, jwks=_jwks(served), audience="graph", issuer=issuer)


def _last_token(upstream: Upstream) -> str:
    return str(upstream.seen[-1]["headers"]["authorization"].removeprefix("Bearer "))


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
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    claims = _verify(served, token)
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


def test_the_jwks_holds_only_public_keys(served: Served) -> None:
    document = _jwks(served)
    assert document["keys"], "no key published"
    for key in document["keys"]:
        assert set(key) == {"kty", "crv", "x", "kid", "alg", "use"}, key


def test_a_standard_jwks_client_verifies_and_cannot_be_fooled(
    served: Served, upstream: Upstream
) -> None:
    """How a Python platform service verifies: PyJWKClient, asymmetric algorithms only."""
    _enrich(served, "n3")
    token = _last_token(upstream)
    client = jwt.PyJWKClient(served.url + JWKS_PATH)

    def verify(candidate: str) -> dict[str, Any]:
        key = client.get_signing_key_from_jwt(candidate)
        claims: dict[str, Any] = jwt.decode(
            candidate,
            key.key,
            algorithms=["EdDSA", "ES256"],
            audience="graph",
            issuer=served.settings.hostcall_token_issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "tenant_id"]},
        )
        return claims

    assert verify(token)["tenant_id"] == "t1"
    # Holding the public key, mint a token for another tenant: HS256 keyed with its PEM.
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["tenant_id"] = "t-victim"
    public = client.get_signing_key_from_jwt(token).key
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = jwt.get_unverified_header(token)
    forged = _forge_hs256({"alg": "HS256", "typ": "JWT", "kid": header["kid"]}, claims, pem)
    with pytest.raises(jwt.InvalidTokenError):
        verify(forged)
    with pytest.raises(jwt.InvalidTokenError):
        _verify(served, forged)


def _forge_hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def test_a_reflecting_upstream_cannot_hand_the_token_to_the_guest(
    served: Served, upstream: Upstream
) -> None:
    output = _enrich(served, "reflect")
    token = _last_token(upstream)
    text = json.dumps(output)
    assert token not in text
    assert token.rsplit(".", 1)[-1] not in text
    reflected = output["enriched"]["body"]["headers"]
    assert reflected["authorization"] == "Bearer [redacted]"
    assert reflected["x-request-id"] == "req-hc-1"
    assert "x-echo-authorization" not in text  # upstream headers never reach the guest


def test_key_rotation_over_the_wire(served: Served, upstream: Upstream) -> None:
    """next is published before it signs; previous keeps verifying tokens in flight."""
    original = served.keys_file.read_text()
    second = new_key("P-256")
    try:
        _enrich(served, "r1")
        by_first = _last_token(upstream)
        assert jwt.get_unverified_header(by_first)["kid"] == "k-2026-11"

        write_keys(
            served.keys_file, (FIRST_KEY, "k-2026-11", "current"), (second, "k-2026-12", "next")
        )
        time.sleep(1.2)  # the runtime checks the key file at most once a second
        assert [key["kid"] for key in _jwks(served)["keys"]] == ["k-2026-11", "k-2026-12"]
        _enrich(served, "r2")
        assert jwt.get_unverified_header(_last_token(upstream))["kid"] == "k-2026-11"

        write_keys(
            served.keys_file,
            (second, "k-2026-12", "current"),
            (FIRST_KEY, "k-2026-11", "previous"),
        )
        time.sleep(1.2)
        _enrich(served, "r3")
        by_second = _last_token(upstream)
        assert jwt.get_unverified_header(by_second)["kid"] == "k-2026-12"
        assert jwt.get_unverified_header(by_second)["alg"] == "ES256"
        assert _verify(served, by_second)["tenant_id"] == "t1"
        assert _verify(served, by_first)["tenant_id"] == "t1"  # overlap: still verifies

    finally:
        served.keys_file.write_text(original)
        time.sleep(1.2)
    _enrich(served, "r4")
    assert _verify(served, _last_token(upstream))["tenant_id"] == "t1"


def test_a_bad_key_file_edit_keeps_the_keys_and_is_counted(served: Served) -> None:
    def failures() -> float:
        text = httpx.get(served.url + "/metrics", timeout=5).text
        prefix = 'extensions_runtime_config_reload_failures_total{file="hostcall_keys"} '
        (line,) = [line for line in text.splitlines() if line.startswith(prefix)]
        return float(line.removeprefix(prefix))

    original = served.keys_file.read_text()
    before, published = failures(), _jwks(served)
    try:
        served.keys_file.write_text('{"keys": [')
        time.sleep(1.2)
        assert _jwks(served) == published  # the last good keys stay in force
        assert failures() == before + 1
        assert _enrich(served, "n5")["enriched"]["status"] == 200
    finally:
        served.keys_file.write_text(original)
        time.sleep(1.2)


def test_the_python_enrich_component_calls_the_upstream_with_a_scoped_token(
    served: Served, upstream: Upstream
) -> None:
    """``enrich-py`` (componentize-py, the typed ``host.call``) through the service."""
    body = {"extensionId": "enrich-py", "inputJson": {"id": "n7"}, "context": CONTEXT}
    authorization = f"Bearer {caller_token('t1', 'o1', 'u1')}"
    give_up = time.monotonic() + 180
    while True:  # the first call compiles the component; UNAVAILABLE meanwhile
        response = connect_json(served.url, body, authorization=authorization)
        if response.status_code != 503 or time.monotonic() > give_up:
            break
        time.sleep(0.5)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["metrics"]["hostCalls"] == 1
    assert answer["outputJson"] == {
        "input": {"id": "n7"},
        "enriched": {"status": 200, "body": {"id": "n7", "name": "Node One"}},
    }
    seen = upstream.seen[-1]
    assert seen["body"] == {"id": "n7"}
    claims = _verify(served, _last_token(upstream))
    assert (claims["tenant_id"], claims["sub"]) == ("t1", "u1")
    assert claims["extension_id"] == "enrich-py"
    assert claims["aud"] == "graph"
    assert _last_token(upstream) not in response.text
