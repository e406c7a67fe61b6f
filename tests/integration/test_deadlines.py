"""A caller's deadline shorter than the work ends it with deadline_exceeded."""

from __future__ import annotations

import grpc
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from protobuf import Oneof

from tests._clients import connect_json, grpc_invoke

# spin runs N xorshift rounds (~2 ms per million): this is seconds of work.
LONG = {"extensionId": "spin", "inputBytes": "NTAwMDAwMDAw"}  # "500000000"


def test_connect_timeout_header(pyvoy_url: str) -> None:
    response = connect_json(pyvoy_url, LONG, **{"connect-timeout-ms": "100"})
    # The server's answer, so the server ended it: run to its end the guest answers 200,
    # or, on a machine too busy to finish in time, the pure tier's own 1 s deadline
    # does, and says so (a time bound would only say how busy the machine was).
    assert response.json()["code"] == "deadline_exceeded", response.text
    assert "limit 1000 ms" not in response.json()["message"], response.text
    # The guest was stopped, not left burning: a quick call still answers fast.
    assert connect_json(pyvoy_url, {"extensionId": "echo", "inputJson": 1}).status_code == 200


def test_grpc_timeout(pyvoy_url: str) -> None:
    request = runtime_pb.InvokeExtensionRequest(
        extension_id="spin", input=Oneof("input_bytes", b"500000000")
    )
    try:
        grpc_invoke(pyvoy_url, request, timeout=0.1)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    else:
        raise AssertionError("a 100 ms deadline did not stop a multi-second guest")
    # The guest was stopped, not left burning: a quick call still answers.
    assert connect_json(pyvoy_url, {"extensionId": "echo", "inputJson": 1}).status_code == 200
