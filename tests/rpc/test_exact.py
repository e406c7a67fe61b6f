"""Exact JSON on the JSON codec: input text cut out of the body, output text spliced in."""

from __future__ import annotations

import json

import pytest
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from connectrpc._shared import decode_message
from connectrpc.code import Code
from connectrpc.codec import proto_json_codec
from connectrpc.errors import ConnectError
from protobuf import Oneof

from app.rpc import _exact
from app.rpc._codec import (
    BoundedJSONCodec,
    ExactJSONCodec,
    JSONTextResponse,
    JSONWireRequest,
    codecs,
)

EXACT = '{"id":9007199254740993,"n":1,"big":12345678901234567890,"f":1.5}'


@pytest.fixture
def codec() -> ExactJSONCodec:
    (json_codec,) = [c for c in codecs() if c.name() == "json"]
    assert isinstance(json_codec, ExactJSONCodec)
    return json_codec


def decode(codec: BoundedJSONCodec, body: str | bytes) -> runtime_pb.InvokeExtensionRequest:
    """As connectrpc decodes a body (a failure is an invalid_argument ConnectError)."""
    data = body.encode() if isinstance(body, str) else body
    return decode_message(codec, data, runtime_pb.InvokeExtensionRequest)


def test_the_guest_gets_the_callers_numbers_as_written(codec: ExactJSONCodec) -> None:
    request = decode(codec, '{"extensionId": "echo", "inputJson": ' + EXACT + ', "version": "1"}')
    assert isinstance(request, JSONWireRequest)
    assert request.extension_id == "echo" and request.version == "1"
    assert request.input == Oneof("input_bytes", EXACT.encode())


def test_input_is_compacted_but_its_tokens_are_kept() -> None:
    body = '{"input_json" : { "a" : [ 1.0 , 1e2 , "x  y\\" ,z" ] ,\n "\\u00e9": -0 } }'
    rest, text = _exact.split_input(body) or ("", "")
    assert text == '{"a":[1.0,1e2,"x  y\\" ,z"],"\\u00e9":-0}'
    assert json.loads(rest) == {"input_json": None}


@pytest.mark.parametrize(
    "body",
    [
        '{"extensionId": "echo"}',
        '{"extensionId": "echo", "inputBytes": "AQI="}',
        "{}",
    ],
)
def test_requests_without_input_json_decode_as_before(codec: ExactJSONCodec, body: str) -> None:
    request = decode(codec, body)
    assert isinstance(request, JSONWireRequest)
    assert runtime_pb.InvokeExtensionRequest.from_json(body).to_binary() == request.to_binary()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[" * 65 + "]" * 65, "nested deeper than 64"),
        ("NaN", "NaN is not JSON"),
        ("[1, Infinity]", "Infinity is not JSON"),
        ("1" * 4301, "longer than 4300"),
    ],
)
def test_refused_input_is_invalid_argument(codec: ExactJSONCodec, value: str, message: str) -> None:
    with pytest.raises(ConnectError) as info:
        decode(codec, '{"extensionId": "echo", "inputJson": ' + value + "}")
    assert info.value.code == Code.INVALID_ARGUMENT
    assert message in info.value.message


@pytest.mark.parametrize(
    "body",
    [
        '{"inputJson": 1, "input_json": 2}',
        '{"inputJson": 1, "inputBytes": "AQI="}',
        '{"inputBytes": "AQI=", "inputJson": 1}',
    ],
)
def test_two_inputs_are_invalid_argument(codec: ExactJSONCodec, body: str) -> None:
    with pytest.raises(ConnectError) as info:
        decode(codec, body)
    assert info.value.code == Code.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "body",
    [
        b'{"extensionId": "echo", "inputJson": [1,}',
        b'{"extensionId": "echo", "inputJson": 1',
        b'{"extensionId": "echo", "inputJson": 1} x',
        b'{"extensionId": "echo", "inputJson": "\xff"}',
        b"[1]",
        b"",
    ],
)
def test_malformed_bodies_fail_as_protobuf_py_reports_them(
    codec: ExactJSONCodec, body: bytes
) -> None:
    with pytest.raises(ConnectError) as exact:
        decode(codec, body)
    with pytest.raises(ConnectError) as plain:
        decode(BoundedJSONCodec(proto_json_codec()), body)
    assert exact.value.code == plain.value.code == Code.INVALID_ARGUMENT
    assert exact.value.message == plain.value.message


@pytest.mark.parametrize(
    ("output", "text"),
    [
        (b'{"words":2}\n', b'{"words":2}'),
        (b" [9007199254740993, 1.0, 1e400] ", b"[9007199254740993, 1.0, 1e400]"),
        (b'"\\u00e9\xc3\xa9"', b'"\\u00e9\xc3\xa9"'),
        (b"1" * 4300, b"1" * 4300),
        (b"", None),
        (b"1" * 4301, None),
        (b"NaN", None),
        (b'"\\ud800"', None),
        (b'"\xed\xa0\x80"', None),
        (b"\xef\xbb\xbf{}", None),
        ('{"a":1}'.encode("utf-16"), None),
        (b"[" * 65 + b"]" * 65, None),
        (b"[" * 100_000, None),
        (b"{} {}", None),
    ],
)
def test_output_text(output: bytes, text: bytes | None) -> None:
    assert _exact.output_text(output) == text


def test_output_text_is_spliced_as_output_json(codec: ExactJSONCodec) -> None:
    response = JSONTextResponse(
        output=Oneof("output_bytes", EXACT.encode()),
        resolved_version="1.0.0",
        metrics=runtime_pb.InvocationMetrics(fuel_consumed=7),
    )
    body = codec.encode(response)
    assert body.startswith(b'{"outputJson":' + EXACT.encode() + b",")
    answer = json.loads(body)
    assert answer["outputJson"]["id"] == 9007199254740993
    assert answer["resolvedVersion"] == "1.0.0" and answer["metrics"]["fuelConsumed"] == "7"
    alone = codec.encode(JSONTextResponse(output=Oneof("output_bytes", b"[]")))
    assert alone == b'{"outputJson":[]}'


def test_other_responses_encode_as_before(codec: ExactJSONCodec) -> None:
    response = runtime_pb.InvokeExtensionResponse(output=Oneof("output_bytes", b"\x01"))
    assert codec.encode(response) == response.to_json().encode()
