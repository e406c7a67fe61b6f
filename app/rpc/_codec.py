"""Wire codecs: protobuf-py's, with JSON nesting bounded before the native parser sees it.

protobuf-py's native ``from_json`` recurses once per JSON nesting level and has
no limit of its own where a message field receives an array (its error path
converts the whole value): a request body such as ``[[[[...]]]]`` 20,000 levels
deep overflows the C stack of the server's worker thread and takes the whole
process down (a segfault under pyvoy, found by the RPC fuzz in
tests/reliability). So a JSON body that *could* be deeper than
:data:`MAX_BODY_DEPTH` (it has more brackets than that) is checked first with
CPython's json module, which stops at the interpreter's recursion limit, and
refused as ``invalid_argument``. Ordinary requests pay two ``bytes.count``.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from connectrpc.code import Code
from connectrpc.codec import Codec, proto_binary_codec, proto_json_codec
from connectrpc.errors import ConnectError
from protobuf import Message

from app.rpc._payload import depth_ok

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
            raise ConnectError(
                Code.INVALID_ARGUMENT, f"JSON request is nested deeper than {MAX_BODY_DEPTH} levels"
            )
        decoded: _M = self._inner.decode(data, message_class)
        return decoded


def codecs() -> list[Codec[Message, Any]]:
    """The codecs every Connect application in this service uses."""
    return [proto_binary_codec(), BoundedJSONCodec(proto_json_codec())]
