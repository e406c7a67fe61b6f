"""Error shapes on the wire: typed, readable, never a traceback."""

from __future__ import annotations

import re
from typing import Any

import grpc
import httpx
import pytest
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb

from app.asgi import create_app
from app.errors import ErrorKind, InvocationFailure
from app.invocation import Invocation, Outcome
from app.settings import Settings
from tests._clients import METHOD, connect_json, grpc_invoke
from tests._servers import thread_server


def test_unknown_method_is_unimplemented(pyvoy_url: str) -> None:
    response = httpx.post(
        pyvoy_url + "/ameide.extensions.v1.WasmExtensionRuntime/Nope",
        json={},
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 404
    assert response.json()["code"] == "unimplemented"


def test_malformed_json_is_invalid_argument(pyvoy_url: str) -> None:
    response = httpx.post(
        pyvoy_url + METHOD,
        content=b'{"extensionId": ',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_argument"
    assert "Traceback" not in body["message"]
    assert body["message"]


def test_missing_extension_id_is_typed(pyvoy_url: str) -> None:
    response = connect_json(pyvoy_url, {"inputJson": {}})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_argument"
    assert body["details"][0]["type"] == "ameide.extensions.v1.InvocationError"
    assert body["details"][0]["debug"]["kind"] == "ERROR_KIND_INVALID_INPUT"


def test_oversize_body_is_resource_exhausted(pyvoy_url: str) -> None:
    big = "x" * (Settings().read_max_bytes + 1)
    response = connect_json(pyvoy_url, {"extensionId": "echo", "inputJson": {"blob": big}})
    assert response.json()["code"] == "resource_exhausted"
    # The server is still there for the next caller.
    assert connect_json(pyvoy_url, {"extensionId": "echo", "inputJson": 1}).status_code == 200


class _Crashing:
    async def invoke(self, invocation: Invocation) -> Outcome:
        raise RuntimeError("secret-token-123 at /srv/private/path.py")


class _Refusing:
    async def invoke(self, invocation: Invocation) -> Outcome:
        raise InvocationFailure(ErrorKind.OVERLOADED, "runtime at capacity")


@pytest.fixture(scope="module")
def crashing_url() -> object:
    with thread_server(create_app(Settings(auth_enabled=False), invoker=_Crashing())) as url:
        yield url


def test_handler_crash_is_generic_internal(crashing_url: str) -> None:
    response = connect_json(crashing_url, {"extensionId": "echo"}, **{"x-request-id": "abc-1"})
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal"
    assert "secret" not in response.text
    assert "/srv" not in response.text
    assert "abc-1" in body["message"]


def test_invocation_failure_maps_to_code_and_detail() -> None:
    with thread_server(create_app(Settings(auth_enabled=False), invoker=_Refusing())) as url:
        response = connect_json(url, {"extensionId": "echo"})
    assert response.json()["code"] == "resource_exhausted"
    assert response.json()["details"][0]["debug"]["kind"] == "ERROR_KIND_OVERLOADED"


def test_request_id_with_a_trailing_newline_is_replaced(pyvoy_url: str) -> None:
    # "$" in a Python regex matches before a final newline: the id passed, the guest
    # ran, and the reply died on the header value as a plain-text 500.
    body = {"context": {"requestId": "rid-1\n"}, "extensionId": "echo", "inputJson": {"x": 1}}
    response = connect_json(pyvoy_url, body)
    assert response.status_code == 200, response.text
    assert response.json()["outputJson"] == {"x": 1}
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


@pytest.mark.parametrize(
    "body",
    [
        {"extensionId": "x" * 1_000_000},
        {"extensionId": "echo", "version": "9" * 1_000_000},
        {"extensionId": "\n" * 500_000},
    ],
)
def test_a_huge_id_gives_a_small_error_over_connect(pyvoy_url: str, body: dict[str, str]) -> None:
    response = connect_json(pyvoy_url, body)
    assert response.status_code == 404
    assert len(response.content) < 4_096  # was 5.7 MB for a 1 MB id
    error = response.json()
    assert error["code"] == "not_found"
    detail = error["details"][0]["debug"]
    assert detail["kind"] == "ERROR_KIND_NOT_FOUND"
    assert len(error["message"]) <= 512
    assert len(detail["extensionId"]) <= 128


@pytest.mark.parametrize("size", [100_000, 1_000_000])
def test_a_huge_id_is_not_found_over_grpc(pyvoy_url: str, size: int) -> None:
    request = runtime_pb.InvokeExtensionRequest(extension_id="x" * size)
    with pytest.raises(grpc.RpcError) as info:
        grpc_invoke(pyvoy_url, request)
    error: Any = info.value
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert len(error.details()) <= 512
