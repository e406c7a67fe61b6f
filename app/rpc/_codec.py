"""Wire codecs: protobuf-py's, with JSON nesting bounded and JSON payloads kept as text.

protobuf-py's native ``from_json`` recurses once per JSON nesting level and has
no limit of its own where a message field receives an array (its error path
converts the whole value): a request body such as ``[[[[...]]]]`` 20,000 levels
deep overflows the C stack of the server's worker thread and takes the whole
process down (a segfault under pyvoy, found by the RPC fuzz in
tests/reliability). So a JSON body that *could* be deeper than
:data:`MAX_BODY_DEPTH` (it has more brackets than that) is checked first with
CPython's json module, which stops at the interpreter's recursion limit, and
refused as ``invalid_argument``. Ordinary requests pay two ``bytes.count``.

The JSON codec also keeps ``InvokeExtension`` payloads exact (see
``app/rpc/_exact.py``): the ``inputJson`` member's text goes to the guest as
written (compacted), never through ``google.protobuf.Value``'s doubles, and the
guest's JSON output text is spliced into the answer as ``outputJson``. The
request it decodes is a :class:`JSONWireRequest`, which tells the handler to
answer with a :class:`JSONTextResponse` that only this codec writes.

A codec runs inside connectrpc's decoder, which would report any other
exception as ``unmarshal message: ...``, so refusals leave here already mapped
(by the one mapper, ``_errors``).
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar, cast

from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from connectrpc.codec import Codec, proto_binary_codec, proto_json_codec
from protobuf import Message, Oneof

from app.rpc._errors import InvalidRequest, to_connect_error
from app.rpc._exact import InputRefused, split_input
from app.rpc._payload import depth_ok

__all__ = [
    "MAX_BODY_DEPTH",
    "BoundedJSONCodec",
    "DelegatingCodec",
    "ExactJSONCodec",
    "JSONTextResponse",
    "JSONWireRequest",
    "codecs",
]

MAX_BODY_DEPTH = 100
"""Deepest JSON request body accepted (protobuf's own message nesting limit)."""

_M = TypeVar("_M", bound=Message)


def _too_deep(data: bytes | bytearray) -> bool:
    if data.count(b"[") + data.count(b"{") <= MAX_BODY_DEPTH:
        return False  # cannot nest deeper than it has brackets
    try:
        value = json.loads(data)
    except RecursionError:
        return True
    except ValueError:
        return False  # not JSON at all: the real codec says why
    return not depth_ok(value, MAX_BODY_DEPTH)


class DelegatingCodec(Codec[Message, Any]):
    """A codec that is another one but for what a subclass overrides."""

    def __init__(self, inner: Codec[Message, Any]) -> None:
        self._inner = inner

    def name(self) -> str:
        return self._inner.name()

    def encode(self, message: Message) -> bytes:
        return self._inner.encode(message)

    def decode(self, data: bytes | bytearray, message_class: type[_M]) -> _M:
        decoded: _M = self._inner.decode(data, message_class)
        return decoded


class BoundedJSONCodec(DelegatingCodec):
    """protobuf-py's JSON codec, refusing bodies nested deeper than MAX_BODY_DEPTH."""

    def decode(self, data: bytes | bytearray, message_class: type[_M]) -> _M:
        if _too_deep(data):
            refused = InvalidRequest(f"JSON request is nested deeper than {MAX_BODY_DEPTH} levels")
            raise to_connect_error(refused)
        decoded: _M = self._inner.decode(data, message_class)
        return decoded


class JSONWireRequest(runtime_pb.InvokeExtensionRequest):
    """A request that came through the JSON codec.

    Its ``input_json``, when it had one, is already the exact JSON text in
    ``input_bytes``; the answer may be a :class:`JSONTextResponse`.
    """

    __slots__ = ()


class JSONTextResponse(runtime_pb.InvokeExtensionResponse):
    """A response whose ``output_bytes`` holds validated JSON text (see ``_exact.output_text``).

    :class:`ExactJSONCodec` writes that text as the ``outputJson`` member. Only a
    :class:`JSONWireRequest` is answered with one, so no other codec sees it.
    """

    __slots__ = ()


class ExactJSONCodec(BoundedJSONCodec):
    """The bounded JSON codec, with ``InvokeExtension`` input and output kept as JSON text."""

    def decode(self, data: bytes | bytearray, message_class: type[_M]) -> _M:
        if message_class is not runtime_pb.InvokeExtensionRequest:
            return super().decode(data, message_class)
        wire = cast("type[_M]", JSONWireRequest)
        try:
            split = split_input(bytes(data).decode())
        except InputRefused as refused:
            raise to_connect_error(InvalidRequest(str(refused))) from None
        except (ValueError, RecursionError):  # not a plain JSON object: protobuf-py says why
            return super().decode(data, wire)
        if split is None:
            return super().decode(data, wire)
        rest, text = split  # rest: the body with input_json's value replaced by null
        request = cast("JSONWireRequest", super().decode(rest.encode(), wire))
        if request.input is None or request.input.field != "input_json":
            raise to_connect_error(InvalidRequest("input_json and input_bytes are both set"))
        exact: Oneof[Literal["input_bytes"], bytes] = Oneof("input_bytes", text.encode())
        request.input = exact
        return cast("_M", request)

    def encode(self, message: Message) -> bytes:
        if not isinstance(message, JSONTextResponse) or message.output is None:
            return super().encode(message)
        text = cast("bytes", message.output.value)
        message.output = None
        rest = super().encode(message).strip()
        members = rest[1:].lstrip()  # protobuf-py writes an object: "{" members "}"
        if members.startswith(b"}"):
            return b'{"outputJson":' + text + b"}"
        return b'{"outputJson":' + text + b"," + members


def codecs() -> list[Codec[Message, Any]]:
    """The codecs every Connect application in this service uses."""
    return [proto_binary_codec(), ExactJSONCodec(proto_json_codec())]
