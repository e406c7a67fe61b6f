"""Thin real clients for each protocol the runtime answers."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import grpc
import httpx
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb

from tests._servers import BIN, ROOT

METHOD = "/ameide.extensions.v1.WasmExtensionRuntime/InvokeExtension"


def connect_json(url: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    """What a developer's curl does: Connect JSON over HTTP/1.1."""
    return httpx.post(
        url + METHOD,
        json=body,
        headers={"content-type": "application/json", **headers},
        timeout=30,
    )


def connect_binary(
    url: str, request: runtime_pb.InvokeExtensionRequest
) -> runtime_pb.InvokeExtensionResponse:
    response = httpx.post(
        url + METHOD,
        content=request.to_binary(),
        headers={"content-type": "application/proto"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/proto"
    return runtime_pb.InvokeExtensionResponse.from_binary(response.content)


def grpc_invoke(
    url: str,
    request: runtime_pb.InvokeExtensionRequest,
    timeout: float = 30,
    metadata: list[tuple[str, str]] | None = None,
) -> runtime_pb.InvokeExtensionResponse:
    """The real grpcio client, h2c, with protobuf-py messages as its codec.

    A failed call raises ``grpc.RpcError`` (its ``initial_metadata()`` and
    ``trailing_metadata()`` are readable)."""
    target = url.removeprefix("http://")
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            METHOD,
            request_serializer=lambda m: m.to_binary(),
            response_deserializer=runtime_pb.InvokeExtensionResponse.from_binary,
        )
        response: runtime_pb.InvokeExtensionResponse = call(
            request, timeout=timeout, metadata=metadata or []
        )
        return response


def buf_curl(url: str, body: dict[str, Any], protocol: str) -> subprocess.CompletedProcess[str]:
    args = [str(BIN / "buf"), "curl", "--schema", str(ROOT / "proto"), "--protocol", protocol]
    if protocol == "grpc":
        args.append("--http2-prior-knowledge")
    args += ["-d", json.dumps(body), url + METHOD]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
