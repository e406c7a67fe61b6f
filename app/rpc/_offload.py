"""Large Connect request bodies are decoded on a worker thread, not the event loop.

Authentication happens before the body is read (``_authenticate``), but an
authenticated tenant may still send a body that is expensive to decode: 4 MB
of JSON numbers takes seconds to become a protobuf ``Value``, and every other
request would wait behind it. connectrpc decodes synchronously inside its
request coroutine, so the codec is given a stand-in that only captures the
(read, size-checked, decompressed) bytes, and the real decode runs here: inline
when small, on a worker thread above :data:`OFF_LOOP_BYTES`.

This overrides connectrpc's private ``_read_post_request`` (connectrpc is
pinned in uv.lock); ``tests/rpc/test_offload.py`` fails if an upgrade stops it
being called.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from ameide_extensions_client.gen.ameide.extensions.v1.runtime_connect import (
    WasmExtensionRuntimeASGIApplication,
)
from connectrpc._shared import decode_message
from protobuf import Message

from app.rpc._codec import DelegatingCodec
from app.rpc._payload import OFF_LOOP_BYTES

__all__ = ["RuntimeASGIApplication"]

_M = TypeVar("_M", bound=Message)


class _Captured(BaseException):
    """Raised by the stand-in codec to hand the body back; a BaseException so that
    connectrpc's ``decode_message`` does not wrap it as ``invalid_argument``."""

    def __init__(self, data: bytes) -> None:
        super().__init__("captured")
        self.data = data


class _Capture(DelegatingCodec):
    """A codec that decodes nothing: it hands the bytes back to the caller."""

    def decode(self, data: bytes | bytearray, message_class: type[_M]) -> _M:
        raise _Captured(bytes(data))


class RuntimeASGIApplication(WasmExtensionRuntimeASGIApplication):
    """The generated application, decoding large unary POST bodies off the loop."""

    off_loop_decodes = 0
    """Bodies decoded on a worker thread (for tests and operators' curiosity)."""

    async def _read_post_request(
        self, endpoint: Any, receive: Any, codec: Any, headers: Any
    ) -> Any:
        try:
            await super()._read_post_request(endpoint, receive, _Capture(codec), headers)
        except _Captured as captured:
            data = captured.data
        else:  # an empty body: connectrpc decoded it without the codec's help
            return decode_message(codec, b"", endpoint.method.input)
        if len(data) > OFF_LOOP_BYTES:
            self.off_loop_decodes += 1
            return await asyncio.to_thread(decode_message, codec, data, endpoint.method.input)
        return decode_message(codec, data, endpoint.method.input)
