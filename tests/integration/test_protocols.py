"""One port, every protocol: the same InvokeExtension through real clients."""

from __future__ import annotations

import json

import grpc
import pytest
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from ameide_extensions_client.gen.ameide.extensions.v1.runtime_connect import (
    WasmExtensionRuntimeClient,
)
from protobuf import Oneof
from protobuf.wkt import Value

from tests._clients import buf_curl, connect_binary, connect_json, grpc_invoke

INPUT = {"name": "Ada", "tags": ["x", "y"], "nested": {"ok": True}}
BODY = {
    "context": {"tenantId": "t1", "organizationId": "o1", "userId": "u1", "requestId": "req-1"},
    "extensionId": "echo",
    "inputJson": INPUT,
}


def _request() -> runtime_pb.InvokeExtensionRequest:
    return runtime_pb.InvokeExtensionRequest.from_json(json.dumps(BODY))


def _output(response: runtime_pb.InvokeExtensionResponse) -> object:
    assert response.output is not None
    assert response.output.field == "output_json"
    value: Value = response.output.value
    return value.to_python()


@pytest.fixture(params=["pyvoy", "hypercorn", "uvicorn"])
def server_url(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param, request.getfixturevalue(f"{request.param}_url")


def test_connect_json_like_curl(server_url: tuple[str, str]) -> None:
    _, url = server_url
    response = connect_json(url, BODY)
    assert response.status_code == 200, response.text
    assert response.json()["outputJson"] == INPUT
    assert response.headers["x-request-id"] == "req-1"


def test_connect_binary(server_url: tuple[str, str]) -> None:
    _, url = server_url
    assert _output(connect_binary(url, _request())) == INPUT


async def test_connectrpc_async_client(server_url: tuple[str, str]) -> None:
    _, url = server_url
    async with WasmExtensionRuntimeClient(url) as client:
        response = await client.invoke_extension(_request())
    assert _output(response) == INPUT


def test_grpcio_client(server_url: tuple[str, str]) -> None:
    name, url = server_url
    if name == "uvicorn":
        # uvicorn speaks HTTP/1.1 only: a gRPC (h2c) client must be refused
        # cleanly, and the server must keep answering afterwards.
        with pytest.raises(grpc.RpcError) as info:
            grpc_invoke(url, _request(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert connect_json(url, BODY).status_code == 200
        return
    assert _output(grpc_invoke(url, _request())) == INPUT


@pytest.mark.parametrize("protocol", ["grpcweb", "grpc", "connect"])
def test_buf_curl(server_url: tuple[str, str], protocol: str) -> None:
    name, url = server_url
    result = buf_curl(url, BODY, protocol)
    if name == "uvicorn" and protocol == "grpc":
        assert result.returncode != 0, "uvicorn unexpectedly answered gRPC over h2c"
        assert connect_json(url, BODY).status_code == 200
        return
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outputJson"] == INPUT


def test_bytes_input_round_trips_without_base64_surprises(pyvoy_url: str) -> None:
    request = runtime_pb.InvokeExtensionRequest(
        extension_id="echo",
        input=Oneof("input_bytes", b"\x00\xffnot json"),
    )
    response = grpc_invoke(pyvoy_url, request)
    assert response.output == Oneof("output_bytes", b"\x00\xffnot json")
