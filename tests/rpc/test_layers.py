"""The layers around each RPC: their order, and what each one answers, in process.

The applications are driven through httpx's ASGI transport, so connectrpc
itself decides which layers run before the body is read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from connectrpc.interceptor import MetadataInterceptor, UnaryInterceptor
from pydantic import SecretStr

from app.auth import Authenticator
from app.errors import ErrorKind, InvocationFailure
from app.invocation import Invocation, Metrics, Outcome
from app.rpc import admin_layers, runtime_app, runtime_layers
from app.rpc._admin_scope import AdminScopeInterceptor
from app.rpc._admission import AdmissionInterceptor, BodyAdmissionInterceptor
from app.rpc._authenticate import AuthenticationInterceptor
from app.rpc._sanitize import SanitizingInterceptor
from app.settings import Settings
from tests._clients import METHOD
from tests._tokens import ISSUER, SECRET, caller_token

SCOPE = "extensions-runtime:admin"


def _auth(enabled: bool = True) -> Authenticator:
    if not enabled:
        return Authenticator(Settings(auth_enabled=False))
    return Authenticator(Settings(auth_hs256_secret=SecretStr(SECRET), auth_issuer=ISSUER))


def test_the_runtime_rpc_reads_sanitize_authenticate_admission() -> None:
    layers = runtime_layers(_auth())
    assert [type(layer) for layer in layers] == [
        SanitizingInterceptor,
        AuthenticationInterceptor,
        AdmissionInterceptor,
    ]
    # All metadata interceptors at the front: connectrpc runs them before reading the body.
    assert all(isinstance(layer, MetadataInterceptor) for layer in layers)


def test_with_auth_off_admission_waits_for_the_body_that_names_the_tenant() -> None:
    layers = runtime_layers(_auth(enabled=False))
    assert [type(layer) for layer in layers] == [
        SanitizingInterceptor,
        AuthenticationInterceptor,
        BodyAdmissionInterceptor,
    ]
    assert all(isinstance(layer, MetadataInterceptor) for layer in layers[:2])
    assert isinstance(layers[2], UnaryInterceptor)
    assert not isinstance(layers[2], MetadataInterceptor)


def test_the_admin_rpc_reads_sanitize_authenticate_admin_scope() -> None:
    layers = admin_layers(_auth(enabled=False), SCOPE)
    assert [type(layer) for layer in layers] == [
        SanitizingInterceptor,
        AuthenticationInterceptor,
        AdminScopeInterceptor,
    ]
    assert all(isinstance(layer, MetadataInterceptor) for layer in layers)


class _Recorder:
    """An invoker that records what reached it, then does what it is told."""

    def __init__(self, raise_: Exception | None = None) -> None:
        self.invocations: list[Invocation] = []
        self.raise_ = raise_

    async def invoke(self, invocation: Invocation) -> Outcome:
        self.invocations.append(invocation)
        if self.raise_ is not None:
            raise self.raise_
        return Outcome(output=invocation.input, resolved_version="1.0.0", metrics=Metrics())


class _Refusing:
    """A rate limiter that refuses every tenant, with a hint; records who asked."""

    def __init__(self) -> None:
        self.tenants: list[str] = []

    async def admit(self, tenant: str, deadline_s: float | None) -> None:
        self.tenants.append(tenant)
        raise InvocationFailure(ErrorKind.OVERLOADED, "rate limit", retry_after_ms=1_500)


def _client(app: Any) -> httpx.AsyncClient:
    """A client of ``app`` in this process (no server)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rpc")


BODY = {"context": {"tenantId": "t1"}, "extensionId": "echo", "inputJson": {"x": 1}}
JSON = {"content-type": "application/json"}


@pytest.fixture
async def guarded() -> AsyncIterator[tuple[httpx.AsyncClient, _Recorder]]:
    invoker = _Recorder()
    app = runtime_app(invoker, _auth(), read_max_bytes=1 << 20)
    async with _client(app) as client:
        yield client, invoker


async def test_an_unproven_caller_is_refused_before_the_body_is_decoded(
    guarded: tuple[httpx.AsyncClient, _Recorder],
) -> None:
    client, invoker = guarded
    response = await client.post(METHOD, content=b"[[[{not json", headers=JSON)
    assert (response.status_code, response.json()["code"]) == (401, "unauthenticated")
    assert response.headers["x-request-id"]
    assert invoker.invocations == []


async def test_a_proven_caller_reaches_the_handler_bound_to_its_token(
    guarded: tuple[httpx.AsyncClient, _Recorder],
) -> None:
    client, invoker = guarded
    headers = {**JSON, "authorization": f"Bearer {caller_token('t1', 'o1', 'u1')}"}
    body = {**BODY, "context": {"requestId": "req-7"}}
    response = await client.post(METHOD, json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "req-7"  # the body's id wins over a fresh one
    (invocation,) = invoker.invocations
    context = invocation.context
    assert (context.tenant_id, context.organization_id, context.user_id) == ("t1", "o1", "u1")


async def test_a_context_naming_another_tenant_is_permission_denied(
    guarded: tuple[httpx.AsyncClient, _Recorder],
) -> None:
    client, invoker = guarded
    headers = {**JSON, "authorization": f"Bearer {caller_token('t2')}"}
    response = await client.post(METHOD, json=BODY, headers=headers)
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert invoker.invocations == []


async def test_an_unexpected_error_before_the_body_is_sanitized_by_the_outermost_layer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret-key at /etc/private")

    authenticator = _auth()
    monkeypatch.setattr(authenticator, "authenticate_async", broken)
    app = runtime_app(_Recorder(), authenticator, read_max_bytes=1 << 20)
    async with _client(app) as client:
        response = await client.post(METHOD, json=BODY, headers={**JSON, "x-request-id": "r-1"})
    assert (response.status_code, response.json()["code"]) == (500, "internal")
    assert response.json()["message"] == "internal error (request_id=r-1)"
    assert "secret" not in response.text and "/etc" not in response.text


async def test_a_handler_crash_is_internal_naming_the_bodys_request_id() -> None:
    app = runtime_app(
        _Recorder(RuntimeError("token=abc at /srv/x.py")),
        _auth(enabled=False),
        read_max_bytes=1 << 20,
    )
    body = {**BODY, "context": {"tenantId": "t1", "requestId": "body-id"}}
    async with _client(app) as client:
        response = await client.post(METHOD, json=body, headers=JSON)
    assert (response.status_code, response.json()["code"]) == (500, "internal")
    assert response.json()["message"] == "internal error (request_id=body-id)"
    assert "abc" not in response.text and "/srv" not in response.text


async def test_with_auth_off_admission_takes_the_bodys_tenant_and_answers_with_a_hint() -> None:
    limiter = _Refusing()
    invoker = _Recorder()
    app = runtime_app(
        invoker,
        _auth(enabled=False),
        read_max_bytes=1 << 20,
        rate_limits=limiter,  # type: ignore[arg-type]
    )
    async with _client(app) as client:
        response = await client.post(METHOD, json=BODY, headers=JSON)
    assert (response.status_code, response.json()["code"]) == (429, "resource_exhausted")
    assert response.headers["retry-after"] == "2"
    assert limiter.tenants == ["t1"]
    assert invoker.invocations == []
