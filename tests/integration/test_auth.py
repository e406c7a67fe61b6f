"""Caller auth on the wire: refused callers never reach the sandbox, and both services
(the runtime and the admin RPC) answer the same refusal with the same code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from app.asgi import create_app
from app.runtime import Runtime
from app.settings import Settings
from tests._clients import connect_json
from tests._servers import ROOT, thread_server
from tests._tokens import ISSUER, SECRET, caller_token

BODY = {"context": {"tenantId": "t1"}, "extensionId": "echo", "inputJson": {"x": 1}}
ADMIN_LIST = "/ameide.extensions.v1.ExtensionRuntimeAdmin/ListExtensions"
ADMIN_SCOPE = "extensions-runtime:admin"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Runtime]]:
    settings = Settings(
        auth_hs256_secret=SecretStr(SECRET),
        auth_issuer=ISSUER,
        extensions_dir=ROOT / "examples" / "extensions",
        module_cache_dir=Path(tmp_path_factory.mktemp("cache")),
    )
    runtime = Runtime(settings)
    with thread_server(create_app(settings, runtime=runtime)) as url:
        yield url, runtime


def _ran(runtime: Runtime) -> int:
    return runtime.modules.stats.hits + runtime.modules.stats.misses


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, "unauthenticated"),
        (caller_token(ttl=-120), "unauthenticated"),
        (caller_token(secret="wrong-secret-wrong-secret-wrong-secret"), "unauthenticated"),
        (caller_token(tenant="t2"), "permission_denied"),
        (caller_token(iss="https://another-issuer.example"), "unauthenticated"),
        # Claims are typed, never str()-coerced: null was the tenant "None".
        (caller_token(tenant=None), "unauthenticated"),  # type: ignore[arg-type]
        (caller_token(tenant=["t1", "t2"]), "unauthenticated"),  # type: ignore[arg-type]
        (caller_token(tenant=""), "unauthenticated"),
    ],
    ids=[
        "no-token",
        "expired",
        "wrong-key",
        "other-tenant",
        "other-issuer",
        "null-tenant",
        "list-tenant",
        "empty-tenant",
    ],
)
def test_refused_callers_never_run_the_module(
    served: tuple[str, Runtime], token: str | None, code: str
) -> None:
    url, runtime = served
    before = _ran(runtime)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = connect_json(url, BODY, **headers)
    assert response.json()["code"] == code
    assert _ran(runtime) == before, "the module ran for a refused caller"


def test_valid_token_runs(served: tuple[str, Runtime]) -> None:
    url, runtime = served
    before = _ran(runtime)
    response = connect_json(url, BODY, authorization=f"Bearer {caller_token('t1')}")
    assert response.status_code == 200, response.text
    assert response.json()["outputJson"] == {"x": 1}
    assert _ran(runtime) == before + 1


def _admin_list(url: str, **headers: str) -> httpx.Response:
    return httpx.post(
        url + ADMIN_LIST, json={}, headers={"content-type": "application/json", **headers}
    )


@pytest.mark.parametrize(
    "token",
    [
        None,
        "not-a-jwt",
        caller_token(sub="ops", scope=ADMIN_SCOPE, ttl=-120),
        caller_token(sub="ops", scope=ADMIN_SCOPE, secret="wrong-secret-wrong-secret-wrong-se"),
    ],
    ids=["no-token", "garbage", "expired", "wrong-key"],
)
def test_both_services_answer_an_unproven_caller_unauthenticated(
    served: tuple[str, Runtime], token: str | None
) -> None:
    """The issue: no token was ``unauthenticated`` on one service, ``permission_denied``
    on the other. Who the caller is is not proven, on either."""
    url, _ = served
    headers = {"authorization": f"Bearer {token}"} if token else {}
    answers = {"runtime": connect_json(url, BODY, **headers), "admin": _admin_list(url, **headers)}
    assert {name: a.json()["code"] for name, a in answers.items()} == {
        "runtime": "unauthenticated",
        "admin": "unauthenticated",
    }
    assert {a.status_code for a in answers.values()} == {401}
    assert all(a.headers["x-request-id"] for a in answers.values())


def test_a_proven_caller_without_the_admin_scope_is_permission_denied_on_the_admin_rpc(
    served: tuple[str, Runtime],
) -> None:
    url, _ = served
    caller = {"authorization": f"Bearer {caller_token('t1')}"}
    assert connect_json(url, BODY, **caller).status_code == 200
    refused = _admin_list(url, **caller)
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    assert ADMIN_SCOPE in refused.json()["message"]
    admin = {"authorization": f"Bearer {caller_token(sub='ops', scope=ADMIN_SCOPE)}"}
    assert _admin_list(url, **admin).status_code == 200
