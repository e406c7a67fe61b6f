"""What a rollout must prove, against whatever :func:`target` is (local or cluster).

Health and readiness, each protocol invoking a known extension, typed errors,
auth refusal without a token, and (when admin checks are allowed) a kill
switch round trip. Run it with ``make integration`` (``MODE=cluster`` against a
deployment: tests/acceptance/_target.py lists the variables).
"""

from __future__ import annotations

import json
import struct
import time
from typing import Any
from urllib.parse import urlsplit

import grpc
import httpx
import pytest
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from protobuf import Oneof

from app.gen.ameide.extensions.v1 import admin_pb
from app.gen.ameide.extensions.v1.admin_connect import ExtensionRuntimeAdminClient
from tests._clients import METHOD
from tests.acceptance._target import Target
from tests.reliability._wire import grpc_web_trailers

INPUT = {"rollout": "check", "n": 7}
TIMEOUT = 30.0


def _connect_json(target: Target, body: dict[str, Any], auth: bool = True) -> httpx.Response:
    headers = {"content-type": "application/json", **(target.headers if auth else {})}
    return httpx.post(target.url + METHOD, json=body, headers=headers, timeout=TIMEOUT)


def _request(target: Target) -> runtime_pb.InvokeExtensionRequest:
    return runtime_pb.InvokeExtensionRequest.from_json(
        json.dumps({"extensionId": target.extension, "inputJson": INPUT})
    )


def _output(answer: runtime_pb.InvokeExtensionResponse) -> object:
    assert answer.output is not None and answer.output.field == "output_json"
    return answer.output.value.to_python()


def _kind(response: httpx.Response) -> tuple[str, str]:
    body = response.json()
    details = body.get("details") or [{}]
    return body.get("code", ""), details[0].get("debug", {}).get("kind", "")


def test_health_and_readiness(target: Target) -> None:
    assert httpx.get(target.url + "/healthz", timeout=TIMEOUT).status_code == 200
    ready = httpx.get(target.url + "/readyz", timeout=TIMEOUT)
    assert ready.status_code == 200, ready.text
    assert ready.json()["ready"] is True


def test_connect_json(target: Target) -> None:
    response = _connect_json(target, {"extensionId": target.extension, "inputJson": INPUT})
    assert response.status_code == 200, response.text
    assert response.json()["outputJson"] == INPUT
    assert response.json()["resolvedVersion"]


def test_connect_binary(target: Target) -> None:
    response = httpx.post(
        target.url + METHOD,
        content=_request(target).to_binary(),
        headers={"content-type": "application/proto", **target.headers},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    assert _output(runtime_pb.InvokeExtensionResponse.from_binary(response.content)) == INPUT


def test_grpc(target: Target) -> None:
    parts = urlsplit(target.url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = f"{parts.hostname}:{port}"
    channel = (
        grpc.secure_channel(address, grpc.ssl_channel_credentials())
        if parts.scheme == "https"
        else grpc.insecure_channel(address)
    )
    with channel:
        call = channel.unary_unary(
            METHOD,
            request_serializer=lambda m: m.to_binary(),
            response_deserializer=runtime_pb.InvokeExtensionResponse.from_binary,
        )
        answer = call(
            _request(target),
            timeout=TIMEOUT,
            metadata=[("authorization", target.headers["authorization"])],
        )
    assert _output(answer) == INPUT


def test_grpc_web(target: Target) -> None:
    message = _request(target).to_binary()
    response = httpx.post(
        target.url + METHOD,
        content=b"\x00" + struct.pack(">I", len(message)) + message,
        headers={
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            **target.headers,
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    body, trailers = grpc_web_trailers(response.content)
    assert trailers.get("grpc-status") == "0", trailers
    assert _output(runtime_pb.InvokeExtensionResponse.from_binary(body)) == INPUT


def test_an_unknown_extension_is_not_found(target: Target) -> None:
    response = _connect_json(target, {"extensionId": "no-such-extension-x9", "inputJson": {}})
    assert _kind(response) == ("not_found", "ERROR_KIND_NOT_FOUND")


def test_a_runaway_guest_gets_a_limit_kind(target: Target) -> None:
    body = {"extensionId": target.limit_extension, "inputJson": {"iterations": 99_999_999_999}}
    code, kind = _kind(_connect_json(target, body))
    assert kind in ("ERROR_KIND_FUEL_EXHAUSTED", "ERROR_KIND_TIMEOUT"), (code, kind)


def test_no_token_is_unauthenticated(target: Target) -> None:
    response = _connect_json(
        target, {"extensionId": target.extension, "inputJson": INPUT}, auth=False
    )
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


async def test_a_kill_switch_round_trip(target: Target) -> None:
    if target.admin_token is None:
        pytest.skip("admin checks not allowed (INTEGRATION_ADMIN is not true)")
    admin = {"authorization": f"Bearer {target.admin_token}"}
    # Only the suite's own tenant is switched off, for at most a minute if the
    # suite dies half way; every pod must refuse, so wait the fleet's bound.
    switch = admin_pb.ControlTarget(target=Oneof("tenant_id", target.tenant))
    body = {"extensionId": target.extension, "inputJson": INPUT}
    async with ExtensionRuntimeAdminClient(target.url) as client:
        await client.disable(
            admin_pb.DisableRequest(target=switch, reason="rollout check", ttl_seconds=60),
            headers=admin,
        )
        try:
            disabled = "ERROR_KIND_EXTENSION_DISABLED"
            assert _eventually(lambda: _kind(_connect_json(target, body))[1] == disabled)
            refused = _connect_json(target, body)
            assert _kind(refused) == ("failed_precondition", "ERROR_KIND_EXTENSION_DISABLED")
            assert "rollout check" in refused.json()["message"]
        finally:
            lifted = await client.enable(admin_pb.EnableRequest(target=switch), headers=admin)
    assert lifted.removed
    assert _eventually(lambda: _connect_json(target, body).status_code == 200)


def _eventually(holds: Any, seconds: float = 10.0) -> bool:
    """Until ``holds()`` is truthy three times running (behind a Service, calls reach
    different pods), or ``seconds`` pass."""
    end, streak = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        streak = streak + 1 if holds() else 0
        if streak >= 3:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.local_only("stops the local S3 server to prove cached versions keep serving")
def test_cached_versions_serve_while_storage_is_down(target: Target, local_storage: Any) -> None:
    body = {"extensionId": target.extension, "inputJson": INPUT}
    assert _connect_json(target, body).status_code == 200  # cached now
    local_storage.stop()
    try:
        response = _connect_json(target, body)
        assert response.status_code == 200, response.text
        assert response.json()["outputJson"] == INPUT
    finally:
        local_storage.start()
