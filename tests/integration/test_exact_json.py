"""Exact JSON end to end (issue 17, item 2) against the production server.

A Connect JSON caller reads what the guest wrote: integers of any size, no
``.0``. The answers are compared as *text*, since a parsed float would hide a
rounding. The Python SDK's round trip is ``tests/client/test_errors.py::
test_numbers_come_back_exactly``; the TypeScript SDK's is in
``tests/clients/test_ts_node.py``.
"""

from __future__ import annotations

import base64
import json

import httpx
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from protobuf import Oneof
from protobuf.wkt import Value

from tests._clients import METHOD, connect_binary, connect_json
from tests.reliability._wire import grpc_web_trailers

EXACT = '{"id":9007199254740993,"n":1,"big":12345678901234567890,"f":1.5}'


def post(url: str, body: str, content_type: str = "application/json") -> httpx.Response:
    """Like curl -d: the body goes as written, not re-serialized by a JSON library."""
    return httpx.post(
        url + METHOD, content=body, headers={"content-type": content_type}, timeout=30
    )


def test_echo_round_trips_exactly_over_connect_json(pyvoy_url: str) -> None:
    response = post(pyvoy_url, '{"extensionId": "echo", "inputJson": ' + EXACT + "}")
    assert response.status_code == 200, response.text
    assert response.text.startswith('{"outputJson":' + EXACT + ',"resolvedVersion":"1.0.0"')
    assert json.loads(response.text)["outputJson"]["id"] == 9007199254740993


def test_the_issues_example_and_pretty_input(pyvoy_url: str) -> None:
    body = '{"extensionId": "echo",\n "inputJson": {\n  "id": 9007199254740993,\n  "n": 1\n }\n}'
    response = post(pyvoy_url, body)
    assert response.status_code == 200, response.text
    assert response.text.startswith('{"outputJson":{"id":9007199254740993,"n":1},')


def test_wordcount_answers_integers(pyvoy_url: str) -> None:
    response = connect_json(pyvoy_url, {"extensionId": "wordcount", "inputJson": {"text": "a b"}})
    assert response.status_code == 200, response.text
    assert response.text.startswith('{"outputJson":{"words":2,"lines":1,"bytes":3},')


def test_logs_metrics_and_formats_still_hold(pyvoy_url: str) -> None:
    body = {"extensionId": "hello", "inputJson": {"name": "Ada"}, "includeLogs": True}
    answer = connect_json(pyvoy_url, body).json()
    assert answer["outputJson"] == {"greeting": "Hello, Ada!"}
    assert answer["logs"] and int(answer["metrics"]["fuelConsumed"]) > 0
    as_bytes = connect_json(
        pyvoy_url,
        {"extensionId": "echo", "inputJson": {"n": 1}, "outputFormat": "OUTPUT_FORMAT_BYTES"},
    ).json()
    assert base64.b64decode(as_bytes["outputBytes"]) == b'{"n":1}'
    text = base64.b64encode(b"not json").decode()
    auto = connect_json(pyvoy_url, {"extensionId": "echo", "inputBytes": text}).json()
    assert auto["outputBytes"] == text
    forced = connect_json(
        pyvoy_url, {"extensionId": "echo", "inputBytes": text, "outputFormat": "OUTPUT_FORMAT_JSON"}
    )
    assert forced.status_code == 400 and forced.json()["code"] == "failed_precondition"


def test_refused_input_json_is_invalid_argument(pyvoy_url: str) -> None:
    for value in ("[" * 65 + "]" * 65, "NaN", "1" * 4301):
        response = post(pyvoy_url, '{"extensionId": "echo", "inputJson": ' + value + "}")
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "invalid_argument"


def test_grpc_web_json_is_exact_too(pyvoy_url: str) -> None:
    message = ('{"extensionId": "echo", "inputJson": ' + EXACT + "}").encode()
    response = httpx.post(
        pyvoy_url + METHOD,
        content=b"\x00" + len(message).to_bytes(4, "big") + message,
        headers={"content-type": "application/grpc-web+json", "x-grpc-web": "1"},
        timeout=30,
    )
    messages, trailers = grpc_web_trailers(response.content)
    assert trailers.get("grpc-status") == "0", trailers
    assert messages.startswith(b'{"outputJson":' + EXACT.encode() + b",")


def test_binary_protocols_keep_value_semantics_unless_asked_for_bytes(pyvoy_url: str) -> None:
    """What the README promises: Value is doubles; input_bytes + OUTPUT_FORMAT_BYTES is exact."""
    as_value = runtime_pb.InvokeExtensionRequest(
        extension_id="echo", input=Oneof("input_json", Value.from_python({"id": 2**53 + 1}))
    )
    response = connect_binary(pyvoy_url, as_value)
    assert response.output is not None and response.output.field == "output_json"
    assert response.output.value.to_python() == {"id": float(2**53)}  # rounded on the way in
    as_bytes = runtime_pb.InvokeExtensionRequest(
        extension_id="echo",
        input=Oneof("input_bytes", EXACT.encode()),
        output_format=runtime_pb.OutputFormat.BYTES,
    )
    assert connect_binary(pyvoy_url, as_bytes).output == Oneof("output_bytes", EXACT.encode())
