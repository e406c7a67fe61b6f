"""Bad input over all four protocols: typed answers, no tracebacks, the server stays up.

Property-based (hypothesis) against the real service (``serve --dev`` under
pyvoy, the production server): random bytes, mutated and truncated messages
and envelopes, wrong content types, overlong varints and lying lengths,
deeply nested JSON, invalid UTF-8, bogus base64 and hostile headers, sent as
Connect JSON, Connect binary, gRPC (raw h2c) and gRPC-web. Every answer must
be one the protocol prescribes (a Connect error whose code matches its HTTP
status, a grpc-status in the trailers, or 415/405) and never ``unknown`` or
``internal`` (the one exception is the INTERNAL that the gRPC spec itself
prescribes for a compressed flag without an encoding, see ``_wire``). After
every property a good call must still succeed, and at the end the server log
must hold no unhandled error.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._clients import METHOD
from tests._servers import cli_server
from tests.reliability._wire import (
    check_connect,
    check_grpc,
    grpc_web_trailers,
    h2_post,
)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SEEN: Counter[str] = Counter()


class Server:
    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", int(parts.port or 80)
        self.log = log
        self.http = httpx.Client(base_url=url, timeout=15)

    def assert_up(self) -> None:
        """A good call still works (run after every property)."""
        response = self.http.post(
            METHOD,
            json={"extensionId": "echo", "inputJson": {"still": "up"}},
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["outputJson"] == {"still": "up"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("fuzz") / "server.log"
    with cli_server("pyvoy", log_path=log) as url:
        served = Server(url, log)
        yield served
        served.assert_up()
        served.http.close()
    text = log.read_text(errors="replace")
    assert "rpc.unhandled_error" not in text, "the handler raised an unexpected exception"
    assert "Traceback" not in text, text[text.find("Traceback") - 2000 :][:6000]


@pytest.fixture(autouse=True)
def _still_up_after(server: Server) -> Iterator[None]:
    yield
    server.assert_up()


# -- building blocks -----------------------------------------------------------------

EXTENSIONS = st.sampled_from(["echo", "hello", "wordcount", "nope", "", "../echo", "e" * 300])
FIELD_NAMES = st.sampled_from(
    [
        "extensionId",
        "extension_id",
        "version",
        "context",
        "inputJson",
        "input_json",
        "inputBytes",
        "includeLogs",
        "outputFormat",
        "tenantId",
        "@type",
        "",
    ]
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
NUMBER_TOKENS = st.sampled_from(
    ["1e999", "-1e999", "1e-999", "NaN", "Infinity", "-0", "1" * 400, "0x10", "01", "1.", ".5"]
)


def varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 70) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# A varint longer than the 10 bytes a uint64 allows, or one that never ends.
HUGE_VARINTS = st.one_of(
    st.integers(min_value=11, max_value=40).map(lambda n: b"\xff" * (n - 1) + b"\x01"),
    st.integers(min_value=1, max_value=20).map(lambda n: b"\x80" * n),
    st.just(b"\xff" * 9 + b"\x7f"),  # 10 bytes, > 2**64
)


@st.composite
def proto_field(draw: st.DrawFn, depth: int = 0) -> bytes:
    """One protobuf field with arbitrary (often wrong) number, wire type and payload."""
    number = draw(st.one_of(st.integers(1, 8), st.integers(0, 2**32)))
    wire = draw(st.sampled_from([0, 1, 2, 5, 2, 2, 3, 4, 6, 7]))
    key = draw(st.one_of(st.just(varint(number << 3 | wire)), HUGE_VARINTS))
    if wire == 0:
        payload = draw(st.one_of(st.integers(0, 2**64 - 1).map(varint), HUGE_VARINTS))
    elif wire == 1:
        payload = draw(st.binary(min_size=0, max_size=8))
    elif wire == 5:
        payload = draw(st.binary(min_size=0, max_size=4))
    elif wire == 2:
        content = draw(
            st.one_of(
                st.binary(max_size=48),
                st.text(max_size=24).map(str.encode),
                st.binary(max_size=8).map(lambda b: b"\xff\xfe" + b + b"\xc3\x28"),
                proto_message(depth + 1) if depth < 3 else st.just(b""),
            )
        )
        length = draw(
            st.sampled_from(
                [
                    len(content),
                    len(content),
                    len(content) + 1,
                    max(0, len(content) - 1),
                    2**31,
                    2**63,
                ]
            )
        )
        payload = varint(length) + content
    else:
        payload = b""
    return key + payload


@st.composite
def proto_message(draw: st.DrawFn, depth: int = 0) -> bytes:
    return b"".join(draw(st.lists(proto_field(depth), max_size=5)))


def good_request(extension_id: str = "echo", value: object = None) -> bytes:
    body = {"extensionId": extension_id, "inputJson": {"k": value if value is not None else 1}}
    return runtime_pb.InvokeExtensionRequest.from_json(json.dumps(body)).to_binary()


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with bytes flipped, inserted, deleted, or cut short."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        position = draw(st.integers(0, max(0, len(buf))))
        if op == "flip" and buf:
            buf[min(position, len(buf) - 1)] = draw(st.integers(0, 255))
        elif op == "insert":
            buf[position:position] = draw(st.binary(min_size=1, max_size=12))
        elif op == "delete" and buf:
            del buf[position : position + draw(st.integers(1, 8))]
        elif op == "truncate":
            del buf[position:]
    return bytes(buf)


def deep_value_binary(depth: int) -> bytes:
    """google.protobuf.Value nested ``depth`` lists deep, as binary."""
    value = b"\x08\x00"  # null_value
    for _ in range(depth):
        list_value = b"\x0a" + varint(len(value)) + value  # ListValue.values
        value = b"\x32" + varint(len(list_value)) + list_value  # Value.list_value
    return b"\x12\x04echo" + b"\x22" + varint(len(value)) + value


PROTO_BODIES = st.one_of(
    st.binary(max_size=256),
    proto_message(),
    mutated(good_request()),
    st.builds(lambda a, b: a + b, st.just(good_request()), proto_message()),
    st.integers(10, 3000).map(deep_value_binary),
)


def envelope(flags: int, message: bytes, declared: int | None = None) -> bytes:
    size = len(message) if declared is None else declared
    return bytes([flags]) + size.to_bytes(4, "big") + message


@st.composite
def enveloped(draw: st.DrawFn) -> bytes:
    """Length-prefixed messages: honest, lying, truncated, flagged, several, or random."""
    message = draw(st.one_of(PROTO_BODIES, json_body()))
    shape = draw(st.sampled_from(["honest", "lie", "cut", "flags", "two", "random", "empty"]))
    if shape == "honest":
        return envelope(0, message)
    if shape == "lie":
        declared = draw(st.one_of(st.integers(0, 2**32 - 1), st.just(len(message) + 1)))
        return envelope(0, message, declared)
    if shape == "cut":
        whole = envelope(0, message)
        return whole[: draw(st.integers(0, max(0, len(whole) - 1)))]
    if shape == "flags":
        return envelope(draw(st.integers(1, 255)), message)
    if shape == "two":
        return envelope(0, message) + envelope(0, good_request())
    if shape == "empty":
        return b""
    return draw(st.binary(max_size=64))


# -- Connect JSON --------------------------------------------------------------------

CONNECT_CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/JSON",
        "text/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/grpc",
        "application/connect+json",
        "",
        "application/json;;;charset=",
        "application/json, application/proto",
    ]
)


@st.composite
def json_body(draw: st.DrawFn) -> bytes:
    kind = draw(
        st.sampled_from(["random", "structured", "deep", "utf8", "base64", "numbers", "mutated"])
    )
    if kind == "random":
        return draw(st.binary(max_size=256))
    if kind == "structured":
        document = draw(st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=6))
        if draw(st.booleans()):
            document["extensionId"] = draw(EXTENSIONS)
        return json.dumps(document).encode()
    if kind == "deep":
        depth = draw(st.integers(50, 20_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        inner = opener * depth + "1" + closer * depth
        where = draw(st.sampled_from(["input", "top", "context"]))
        if where == "top":
            return inner.encode()
        if where == "context":
            return ('{"extensionId":"echo","context":' + inner + "}").encode()
        return ('{"extensionId":"echo","inputJson":' + inner + "}").encode()
    if kind == "utf8":
        good = json.dumps({"extensionId": "echo", "inputJson": {"name": "Ada"}}).encode()
        bad = draw(
            st.sampled_from(
                [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"]
            )
        )
        position = draw(st.integers(0, len(good)))
        return good[:position] + bad + good[position:]
    if kind == "base64":
        text = draw(
            st.one_of(
                st.text(alphabet="!@#$%^&*()=~`{}|<>?\\ \t\n", max_size=20),
                st.text(alphabet="ABCDabcd0123+/=-_", max_size=21),
                st.just("===="),
                st.just("QUJD\x00"),
            )
        )
        return json.dumps({"extensionId": "echo", "inputBytes": text}).encode()
    if kind == "numbers":
        token = draw(NUMBER_TOKENS)
        field = draw(st.sampled_from(["inputJson", "outputFormat", "includeLogs", "extensionId"]))
        return ('{"extensionId":"echo","' + field + '":' + token + "}").encode()
    good = json.dumps(
        {"extensionId": "echo", "context": {"tenantId": "t1"}, "inputJson": {"a": [1, "b"]}}
    ).encode()
    return draw(mutated(good))


@FUZZ
@given(body=json_body())
def test_connect_json_bad_bodies(server: Server, body: bytes) -> None:
    response = server.http.post(METHOD, content=body, headers={"content-type": "application/json"})
    SEEN[
        check_connect(
            response.status_code, response.headers.get("content-type", ""), response.content
        )
    ] += 1


@FUZZ
@given(
    body=st.one_of(json_body(), PROTO_BODIES),
    content_type=CONNECT_CONTENT_TYPES,
    encoding=st.sampled_from([None, "gzip", "br", "zstd", "identity", "deflate", "x-bogus"]),
    timeout=st.one_of(
        st.none(),
        st.sampled_from(["0", "1", "-1", "abc", "9" * 11, "99999999999999999999", "5 ms", "1e3"]),
    ),
    version=st.sampled_from([None, "1", "2", ""]),
)
def test_connect_headers_and_content_types(
    server: Server,
    body: bytes,
    content_type: str,
    encoding: str | None,
    timeout: str | None,
    version: str | None,
) -> None:
    headers = {"content-type": content_type}
    if encoding is not None:
        headers["content-encoding"] = encoding
    if timeout is not None:
        headers["connect-timeout-ms"] = timeout
    if version is not None:
        headers["connect-protocol-version"] = version
    response = server.http.post(METHOD, content=body, headers=headers)
    SEEN[
        check_connect(
            response.status_code, response.headers.get("content-type", ""), response.content
        )
    ] += 1


@FUZZ
@given(
    message=st.one_of(
        st.text(max_size=80),
        st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).decode()),
    )
)
def test_connect_get_requests(server: Server, message: str) -> None:
    params = {"message": message, "encoding": "json", "connect": "v1"}
    response = server.http.get(METHOD, params=params)
    SEEN[
        check_connect(
            response.status_code, response.headers.get("content-type", ""), response.content
        )
    ] += 1


# -- whatever a guest writes, the answer encodes ---------------------------------------

OUTPUT_FRAGMENTS = st.sampled_from(
    [
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"1e999",
        b"1" * 400,
        b'"\\ud800"',
        b'{"\\udfff":1}',
        b'"\xed\xa0\x80"',
        b"[",
        b"]",
        b"{",
        b"}",
        b",",
        b":",
        b'"k"',
        b"1",
        b"null",
        b"\xff",
        b"[" * 70,
        b"]" * 70,
        b'"\\u0000"',
        b"-0",
        b"1e308",
        b"2e308",
        b" ",
        b"true",
    ]
)


@FUZZ
@given(
    output=st.one_of(
        st.lists(OUTPUT_FRAGMENTS, max_size=12).map(b"".join),
        st.binary(max_size=64),
    ),
    fmt=st.sampled_from(["OUTPUT_FORMAT_UNSPECIFIED", "OUTPUT_FORMAT_JSON", "OUTPUT_FORMAT_BYTES"]),
    binary=st.booleans(),
)
def test_any_guest_output_is_answered(
    server: Server, output: bytes, fmt: str, binary: bool
) -> None:
    """``echo`` returns its input, so the input is the guest's output: never an encoding failure."""
    body = {
        "extensionId": "echo",
        "inputBytes": base64.b64encode(output).decode(),
        "outputFormat": fmt,
    }
    if binary:
        request = runtime_pb.InvokeExtensionRequest.from_json(json.dumps(body)).to_binary()
        response = server.http.post(
            METHOD, content=request, headers={"content-type": "application/proto"}
        )
    else:
        response = server.http.post(METHOD, json=body, headers={"content-type": "application/json"})
    code = check_connect(
        response.status_code, response.headers.get("content-type", ""), response.content
    )
    SEEN[code] += 1
    if fmt == "OUTPUT_FORMAT_JSON":
        assert code in ("ok", "failed_precondition"), code  # INVALID_OUTPUT when not JSON
    else:
        assert code == "ok", response.content[:300]


# -- Connect binary ------------------------------------------------------------------


@FUZZ
@given(body=PROTO_BODIES)
def test_connect_binary_bad_messages(server: Server, body: bytes) -> None:
    response = server.http.post(METHOD, content=body, headers={"content-type": "application/proto"})
    SEEN[
        check_connect(
            response.status_code, response.headers.get("content-type", ""), response.content
        )
    ] += 1
    if response.status_code == 200:
        runtime_pb.InvokeExtensionResponse.from_binary(response.content)


# -- gRPC (h2c) ----------------------------------------------------------------------


@FUZZ
@given(
    body=enveloped(),
    content_type=st.sampled_from(
        [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc+json",
            "application/grpc+bogus",
        ]
    ),
    grpc_timeout=st.one_of(
        st.none(), st.sampled_from(["1n", "0S", "99999999H", "10x", "-1S", "1000m"])
    ),
    encoding=st.sampled_from([None, "gzip", "identity", "x-bogus"]),
)
def test_grpc_bad_envelopes(
    server: Server, body: bytes, content_type: str, grpc_timeout: str | None, encoding: str | None
) -> None:
    headers = [("content-type", content_type), ("te", "trailers")]
    if grpc_timeout is not None:
        headers.append(("grpc-timeout", grpc_timeout))
    if encoding is not None:
        headers.append(("grpc-encoding", encoding))
    answer = h2_post(server.host, server.port, METHOD, headers, body)
    assert not answer.reset, "the server reset the stream instead of answering"
    SEEN[check_grpc(answer.status, answer.headers, answer.trailers, answer.body)] += 1


# -- gRPC-web ------------------------------------------------------------------------


@FUZZ
@given(
    body=enveloped(),
    content_type=st.sampled_from(
        [
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpc-web+json",
            "application/grpc-web-text",
        ]
    ),
)
def test_grpc_web_bad_envelopes(server: Server, body: bytes, content_type: str) -> None:
    response = server.http.post(
        METHOD, content=body, headers={"content-type": content_type, "x-grpc-web": "1"}
    )
    if response.status_code == 200:
        messages, trailers = grpc_web_trailers(response.content)
        SEEN[check_grpc(200, dict(response.headers), trailers, messages)] += 1
    else:
        SEEN[check_grpc(response.status_code, dict(response.headers), {}, response.content)] += 1


def test_the_fuzz_reached_the_handler_and_past_it(server: Server) -> None:
    """The properties above exercised more than the framing layer (not vacuous)."""
    if not SEEN:
        pytest.skip("only meaningful after the properties above ran")
    assert SEEN["ok"] > 0, SEEN
    assert SEEN["invalid_argument"] > 0, SEEN
    assert any(key.startswith("grpc-") for key in SEEN), SEEN
