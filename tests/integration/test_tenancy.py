"""Tenants against each other on a running service: ownership and breakers.

Tenants ``acme`` and ``globex`` each own an extension called ``discount-rules``
(acme's is the echo module, globex's counts words, so each answer says whose
module ran); the example extensions are platform ones every tenant may call.
Tenants are real callers with real tokens, over Connect JSON and grpcio, to
the production server (pyvoy); breaker states are read from ``/metrics``.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from prometheus_client.parser import text_string_to_metric_families
from protobuf import Oneof

from app.catalog import build_definition, publish
from app.settings import Settings
from tests._clients import connect_json, grpc_invoke
from tests._servers import ROOT, cli_server
from tests._tokens import SECRET, caller_token

EXAMPLES = ROOT / "examples" / "extensions"


ISSUER = "https://issuer.tenancy.test"


def _as(tenant: str) -> dict[str, str]:
    return {"authorization": "Bearer " + caller_token(tenant, iss=ISSUER)}


def _own(root: Path, tenant: str | None, module: str, extension_id: str = "discount-rules") -> None:
    """Publish the example ``module`` as ``tenant``'s ``extension_id`` (None: platform)."""
    wasm = (EXAMPLES / module / "1.0.0" / "module.wasm").read_bytes()
    example = (EXAMPLES / module / "1.0.0" / "extension.json").read_text()
    definition = build_definition(
        wasm,
        extension_id=extension_id,
        version="1.0.0",
        abi="wasi-stdio" if '"wasi-stdio"' in example else "raw",
        tier="pure",
        limits={},
        host_calls=[],
        config={},
        owner=tenant,
    )
    settings = Settings(extensions_dir=root)
    asyncio.run(publish(settings, definition, wasm, promote=True))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("tenancy") / "extensions"
    shutil.copytree(EXAMPLES, root)
    _own(root, "acme", "echo")
    _own(root, "globex", "wordcount")
    _own(root, None, "hello", "bad-build")  # a platform extension for the bad-build test
    env = {
        "EXTENSIONS_RUNTIME_AUTH_HS256_SECRET": SECRET,
        "EXTENSIONS_RUNTIME_AUTH_ISSUER": ISSUER,
        "EXTENSIONS_RUNTIME_EXTENSIONS_DIR": str(root),
        "EXTENSIONS_RUNTIME_BREAKER_MIN_CALLS": "20",
        "EXTENSIONS_RUNTIME_BREAKER_COOLDOWN_S": "60",
        "EXTENSIONS_RUNTIME_BREAKER_MIN_TENANTS": "3",
    }
    log = tmp_path_factory.mktemp("tenancy-log") / "serve.log"
    with cli_server("pyvoy", env=env, dev=False, log_path=log) as url:
        yield url


def _breakers(url: str, extension: str) -> tuple[float, float]:
    """(version-wide state 0/1/2, tenants with an open breaker) of a platform extension."""
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(url + "/metrics").text)}
    wanted = {"owner": "_platform", "extension": extension, "version": "1.0.0"}

    def value(name: str) -> float:
        samples = [s for s in families[name].samples if s.labels == wanted]
        assert samples, f"no {name} sample for {wanted}"
        return samples[0].value

    return (
        value("extensions_runtime_breaker_state"),
        value("extensions_runtime_breaker_open_tenants"),
    )


def _invoke(
    url: str, tenant: str, extension: str, value: object, **extra: object
) -> httpx.Response:
    body = {"extensionId": extension, "inputJson": value, **extra}
    return connect_json(url, body, **_as(tenant))


def _grpc(url: str, tenant: str, extension: str) -> grpc.StatusCode:
    request = runtime_pb.InvokeExtensionRequest(
        extension_id=extension, input=Oneof("input_bytes", b"{}")
    )
    try:
        grpc_invoke(url, request, metadata=[("authorization", _as(tenant)["authorization"])])
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_each_tenant_runs_its_own_discount_rules(served: str) -> None:
    url = served
    acme = _invoke(url, "acme", "discount-rules", {"text": "two words"})
    globex = _invoke(url, "globex", "discount-rules", {"text": "two words"})
    assert acme.status_code == globex.status_code == 200, (acme.text, globex.text)
    assert acme.json()["outputJson"] == {"text": "two words"}  # acme's echo
    assert globex.json()["outputJson"] != acme.json()["outputJson"]  # globex's word count
    assert "words" in str(globex.json()["outputJson"])


def test_another_tenants_extension_is_not_found(served: str) -> None:
    url = served
    theirs = _invoke(url, "initech", "discount-rules", {})
    nobody = _invoke(url, "initech", "no-such-extension", {})
    assert theirs.json()["code"] == nobody.json()["code"] == "not_found"
    kind = theirs.json()["details"][0]["debug"]["kind"]
    assert kind == "ERROR_KIND_NOT_FOUND"
    # Naming the owner's version does not help either.
    assert _invoke(url, "initech", "discount-rules", {}, version="1.0.0").json()["code"] == (
        "not_found"
    )
    assert _grpc(url, "initech", "discount-rules") is grpc.StatusCode.NOT_FOUND
    assert _grpc(url, "acme", "discount-rules") is grpc.StatusCode.OK


def test_a_platform_extension_answers_every_tenant(served: str) -> None:
    url = served
    for tenant in ("acme", "globex", "initech"):
        response = _invoke(url, tenant, "echo", {"who": tenant})
        assert response.status_code == 200, response.text
        assert response.json()["outputJson"] == {"who": tenant}
        assert _grpc(url, tenant, "echo") is grpc.StatusCode.OK


def test_one_tenants_faults_leave_other_tenants_served(served: str) -> None:
    url = served
    # hello exits 1 (TRAP) for input that is not a JSON object.
    for _ in range(20):
        assert _invoke(url, "evil", "hello", [1]).json()["code"] == "aborted"
    refused = _invoke(url, "evil", "hello", {"name": "A"})
    assert refused.json()["code"] == "unavailable"
    assert "for your tenant" in refused.json()["message"]
    for _ in range(5):
        good = _invoke(url, "good", "hello", {"name": "Ada"})
        assert good.status_code == 200, good.text
    assert _breakers(url, "hello") == (0, 1)  # version closed, one tenant's breaker open


def test_a_caller_deadline_timeout_is_not_a_guest_fault(served: str) -> None:
    url = served
    # spin would run ~2 s; the caller gives it 20 ms, 25 times.
    for _ in range(25):
        response = connect_json(
            url,
            {"extensionId": "spin", "inputJson": {"iterations": 1_000_000_000}},
            **_as("rushed"),
            **{"connect-timeout-ms": "20"},
        )
        assert response.json()["code"] == "deadline_exceeded", response.text
    assert _breakers(url, "spin") == (0, 0)
    quick = _invoke(url, "rushed", "spin", {"iterations": 10})
    assert quick.status_code == 200, quick.text


def test_a_version_failing_for_many_tenants_opens_for_all(served: str) -> None:
    url = served
    # A build that fails for everyone (here: hello fed input it refuses), seen by
    # three tenants, none of whom reaches its own breaker's minimum of 20 calls.
    for _ in range(7):
        for tenant in ("t-a", "t-b", "t-c"):
            assert _invoke(url, tenant, "bad-build", "not an object").json()["code"] in (
                "aborted",
                "unavailable",
            )
    assert _breakers(url, "bad-build") == (2, 0)  # open for all; no tenant tripped alone
    refused = _invoke(url, "t-new", "bad-build", {"name": "A"})
    assert refused.json()["code"] == "unavailable", refused.text
    assert "for many tenants" in refused.json()["message"]
