"""A caller's deadline shorter than the work ends it with deadline_exceeded."""

from __future__ import annotations

import time

import grpc
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from protobuf import Oneof

from tests._clients import connect_json, grpc_invoke

# spin runs N xorshift rounds (~2 ms per million): this is seconds of work.
LONG = {"extensionId": "spin", "inputBytes": "NTAwMDAwMDAw"}  # "500000000"


def test_connect_timeout_header(pyvoy_url: str) -> None:
    started = time.monotonic()
    response = connect_json(pyvoy_url, LONG, **{"connect-timeout-ms": "100"})
    elapsed = time.monotonic() - started
    assert response.json()["code"] == "deadline_exceeded", response.text
    assert elapsed < 2.0
    # The guest was stopped, not left burning: a quick call still answers fast.
    assert connect_json(pyvoy_url, {"extensionId": "echo", "inputJson": 1}).status_code == 200


def test_grpc_timeout(pyvoy_url: str) -> None:
    request = runtime_pb.InvokeExtensionRequest(
        extension_id="spin", input=Oneof("input_bytes", b"500000000")
    )
    started = time.monotonic()
    try:
        grpc_invoke(pyvoy_url, request, timeout=0.1)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    else:
        raise AssertionError("a 100 ms deadline did not stop a multi-second guest")
    assert time.monotonic() - started < 2.0
