"""The application in-process: routing, the codecs and wire errors, over an ASGI transport.

``tests/integration/`` asks the same questions of real servers and real
clients (``test_protocols.py``, ``test_exact_json.py``, ``test_wire_errors.py``),
which the rules require and which only they can answer for gRPC over HTTP/2.
These answers come from the app ``app/asgi.py`` builds, with the embedded
example extensions and no socket, so the fast lane has them in milliseconds.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from protobuf import Oneof
from protobuf.wkt import Value

from app.errors import ErrorKind, InvocationFailure
from app.invocation import Invocation, Outcome
from app.settings import Settings
from tests._asgi import app_client, example_settings
from tests._clients import METHOD
from tests.reliability._wire import grpc_web_trailers

SERVICE = "/ameide.extensions.v1.WasmExtensionRuntime"
INPUT = {"name": "Ada", "tags": ["x", "y"], "nested": {"ok": True}}
BODY = {
    "context": {"tenantId": "t1", "organizationId": "o1", "userId": "u1", "requestId": "req-1"},
    "extensionId": "echo",
    "inputJson": INPUT,
}
EXACT = '{"id":9007199254740993,"n":1,"big":12345678901234567890,"f":1.5}'
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(example_settings(tmp_path_factory.mktemp("cache"))) as started:
        yield started


def _frame(message: bytes) -> bytes:
    """One uncompressed gRPC-web message frame."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


async def _post_text(client: httpx.AsyncClient, body: str) -> httpx.Response:
    """The body exactly as written (like ``curl -d``), not re-serialized by a JSON library."""
    return await client.post(METHOD, content=body, headers=JSON)


# ---- routing ---------------------------------------------------------------------------


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert (health.status_code, health.text) == (200, "ok")
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["ready"] is True


@pytest.mark.parametrize("path", [f"{SERVICE}/Nope", "/no.such.Service/Method", "/"])
async def test_an_unknown_method_is_unimplemented_over_connect(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.post(path, json={}, headers=JSON)
    assert response.status_code == 404
    assert response.json()["code"] == "unimplemented"
    assert path[:200] in response.json()["message"]


async def test_an_unknown_method_is_unimplemented_over_grpc_web(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        f"{SERVICE}/Nope",
        content=_frame(b""),
        headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
    )
    # Trailers-only: a gRPC-web client reads the status from the headers.
    assert response.status_code == 200
    assert response.headers["grpc-status"] == "12"


@pytest.mark.parametrize("path", ["/nope", "/debug", "/debug/extensions", "/metrics/extra"])
async def test_an_unknown_page_is_not_found(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json() == {"error": "not found"}


async def test_a_method_path_takes_only_post(client: httpx.AsyncClient) -> None:
    assert (await client.put(METHOD, json=BODY)).status_code == 405
    # Connect's GET is for side-effect-free methods only; InvokeExtension is not one.
    assert (await client.get(METHOD)).status_code == 405


# ---- codecs ----------------------------------------------------------------------------


async def test_connect_json(client: httpx.AsyncClient) -> None:
    response = await client.post(METHOD, json=BODY, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["outputJson"] == INPUT
    assert response.json()["resolvedVersion"] == "1.0.0"
    assert response.headers["x-request-id"] == "req-1"


async def test_connect_proto(client: httpx.AsyncClient) -> None:
    request = runtime_pb.InvokeExtensionRequest.from_json(json.dumps(BODY))
    response = await client.post(
        METHOD, content=request.to_binary(), headers={"content-type": "application/proto"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/proto"
    answer = runtime_pb.InvokeExtensionResponse.from_binary(response.content)
    assert answer.output is not None and answer.output.field == "output_json"
    assert answer.output.value.to_python() == INPUT


async def test_grpc_web_proto(client: httpx.AsyncClient) -> None:
    request = runtime_pb.InvokeExtensionRequest.from_json(json.dumps(BODY))
    response = await client.post(
        METHOD,
        content=_frame(request.to_binary()),
        headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
    )
    assert response.status_code == 200
    message, trailers = grpc_web_trailers(response.content)
    assert trailers.get("grpc-status") == "0", trailers
    answer = runtime_pb.InvokeExtensionResponse.from_binary(message)
    assert answer.output is not None and answer.output.value.to_python() == INPUT


async def test_an_unsupported_content_type_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        METHOD, content=b"extensionId=echo", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415


# ---- exact JSON numbers ----------------------------------------------------------------


async def test_connect_json_numbers_round_trip_exactly(client: httpx.AsyncClient) -> None:
    response = await _post_text(client, '{"extensionId": "echo", "inputJson": ' + EXACT + "}")
    assert response.status_code == 200, response.text
    # Compared as text: a parsed float would hide a rounding.
    assert response.text.startswith('{"outputJson":' + EXACT + ',"resolvedVersion":"1.0.0"')


async def test_pretty_input_and_a_guests_integers(client: httpx.AsyncClient) -> None:
    pretty = '{"extensionId": "echo",\n "inputJson": {\n  "id": 9007199254740993,\n  "n": 1\n }\n}'
    response = await _post_text(client, pretty)
    assert response.text.startswith('{"outputJson":{"id":9007199254740993,"n":1},')
    counted = await client.post(
        METHOD, json={"extensionId": "wordcount", "inputJson": {"text": "a b"}}, headers=JSON
    )
    assert counted.text.startswith('{"outputJson":{"words":2,"lines":1,"bytes":3},')


async def test_grpc_web_json_is_exact_too(client: httpx.AsyncClient) -> None:
    message = ('{"extensionId": "echo", "inputJson": ' + EXACT + "}").encode()
    response = await client.post(
        METHOD,
        content=_frame(message),
        headers={"content-type": "application/grpc-web+json", "x-grpc-web": "1"},
    )
    messages, trailers = grpc_web_trailers(response.content)
    assert trailers.get("grpc-status") == "0", trailers
    assert messages.startswith(b'{"outputJson":' + EXACT.encode() + b",")


async def test_binary_keeps_value_semantics_unless_asked_for_bytes(
    client: httpx.AsyncClient,
) -> None:
    async def proto(request: runtime_pb.InvokeExtensionRequest) -> Any:
        response = await client.post(
            METHOD, content=request.to_binary(), headers={"content-type": "application/proto"}
        )
        assert response.status_code == 200, response.text
        return runtime_pb.InvokeExtensionResponse.from_binary(response.content)

    as_value = await proto(
        runtime_pb.InvokeExtensionRequest(
            extension_id="echo", input=Oneof("input_json", Value.from_python({"id": 2**53 + 1}))
        )
    )
    assert as_value.output.value.to_python() == {"id": float(2**53)}  # a Value is a double
    as_bytes = await proto(
        runtime_pb.InvokeExtensionRequest(
            extension_id="echo",
            input=Oneof("input_bytes", EXACT.encode()),
            output_format=runtime_pb.OutputFormat.BYTES,
        )
    )
    assert as_bytes.output == Oneof("output_bytes", EXACT.encode())


async def test_output_formats(client: httpx.AsyncClient) -> None:
    async def call(body: dict[str, Any]) -> httpx.Response:
        return await client.post(METHOD, json={"extensionId": "echo", **body}, headers=JSON)

    as_bytes = await call({"inputJson": {"n": 1}, "outputFormat": "OUTPUT_FORMAT_BYTES"})
    assert base64.b64decode(as_bytes.json()["outputBytes"]) == b'{"n":1}'
    text = base64.b64encode(b"not json").decode()
    assert (await call({"inputBytes": text})).json()["outputBytes"] == text
    forced = await call({"inputBytes": text, "outputFormat": "OUTPUT_FORMAT_JSON"})
    assert forced.status_code == 400
    assert forced.json()["code"] == "failed_precondition"


@pytest.mark.parametrize("value", ["[" * 65 + "]" * 65, "NaN", "1" * 4301])
async def test_refused_input_json_is_invalid_argument(
    client: httpx.AsyncClient, value: str
) -> None:
    response = await _post_text(client, '{"extensionId": "echo", "inputJson": ' + value + "}")
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_argument"


# ---- wire errors -----------------------------------------------------------------------


def _detail(response: httpx.Response) -> dict[str, Any]:
    detail = response.json()["details"][0]
    assert detail["type"] == "ameide.extensions.v1.InvocationError"
    debug: dict[str, Any] = detail["debug"]
    return debug


async def test_malformed_json_is_invalid_argument(client: httpx.AsyncClient) -> None:
    response = await _post_text(client, '{"extensionId": ')
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_argument"
    assert response.json()["message"]
    assert "Traceback" not in response.text


async def test_missing_extension_id_is_typed(client: httpx.AsyncClient) -> None:
    response = await client.post(METHOD, json={"inputJson": {}}, headers=JSON)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_argument"
    assert _detail(response)["kind"] == "ERROR_KIND_INVALID_INPUT"


async def test_an_unknown_extension_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.post(METHOD, json={"extensionId": "nope"}, headers=JSON)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert _detail(response)["kind"] == "ERROR_KIND_NOT_FOUND"


async def test_an_oversize_body_is_resource_exhausted(client: httpx.AsyncClient) -> None:
    big = "x" * (Settings().read_max_bytes + 1)
    body = {"extensionId": "echo", "inputJson": {"blob": big}}
    response = await client.post(METHOD, json=body, headers=JSON)
    assert response.json()["code"] == "resource_exhausted"
    assert (await client.post(METHOD, json=BODY, headers=JSON)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"extensionId": "x" * 1_000_000},
        {"extensionId": "echo", "version": "9" * 1_000_000},
        {"extensionId": "\n" * 500_000},
    ],
)
async def test_a_huge_id_gives_a_small_error(
    client: httpx.AsyncClient, body: dict[str, str]
) -> None:
    response = await client.post(METHOD, json=body, headers=JSON)
    assert response.status_code == 404
    assert len(response.content) < 4_096
    assert response.json()["code"] == "not_found"
    assert len(response.json()["message"]) <= 512
    assert len(_detail(response)["extensionId"]) <= 128


async def test_a_request_id_with_a_trailing_newline_is_replaced(client: httpx.AsyncClient) -> None:
    body = {"context": {"requestId": "rid-1\n"}, "extensionId": "echo", "inputJson": {"x": 1}}
    response = await client.post(METHOD, json=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


class _Crashing:
    async def invoke(self, invocation: Invocation) -> Outcome:
        raise RuntimeError("secret-token-123 at /srv/private/path.py")


class _Refusing:
    async def invoke(self, invocation: Invocation) -> Outcome:
        raise InvocationFailure(ErrorKind.OVERLOADED, "runtime at capacity", retry_after_ms=250)


async def test_a_handler_crash_is_a_generic_internal_error() -> None:
    async with app_client(Settings(auth_enabled=False), invoker=_Crashing()) as crashing:
        response = await crashing.post(
            METHOD, json={"extensionId": "echo"}, headers={**JSON, "x-request-id": "abc-1"}
        )
        grpc_web = await crashing.post(
            METHOD,
            content=_frame(runtime_pb.InvokeExtensionRequest(extension_id="echo").to_binary()),
            headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
        )
    assert response.status_code == 500
    assert response.json()["code"] == "internal"
    assert "abc-1" in response.json()["message"]
    _, trailers = grpc_web_trailers(grpc_web.content)
    assert trailers["grpc-status"] == "13"
    for answer in (response.text, str(grpc_web.headers), grpc_web.content.decode("latin-1")):
        assert "secret" not in answer
        assert "/srv" not in answer


async def test_an_invocation_failure_maps_to_its_code_and_detail() -> None:
    async with app_client(Settings(auth_enabled=False), invoker=_Refusing()) as refusing:
        response = await refusing.post(METHOD, json={"extensionId": "echo"}, headers=JSON)
    assert response.status_code == 429
    assert response.json()["code"] == "resource_exhausted"
    detail = _detail(response)
    assert detail["kind"] == "ERROR_KIND_OVERLOADED"
    assert detail["message"] == "runtime at capacity"
    assert int(detail["retryAfterMs"]) == 250
