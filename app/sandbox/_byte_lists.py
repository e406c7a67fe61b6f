"""``list<u8>`` between Python ``bytes`` and the component model in one copy.

wasmtime-py 50.0.1 (pinned) converts a ``list<u8>`` element by element in
Python: one ``wasmtime_component_val_t`` (32 bytes) filled per byte, in both
directions. That costs ~2 us a byte: the 256-byte random draws CPython makes
at every start of a componentize-py guest (ten of them) took ~5 ms of a 9 ms
call, and a 100 KiB input would take a fifth of a second before the guest
starts. Everything an extension exchanges is ``list<u8>`` (input, output,
host-call bodies), so this is the hot path of the ``component`` ABI.

:func:`install` replaces ``ListType.convert_to_c`` / ``convert_from_c`` for
byte lists only: the array of values is built (or read) as one block with
strided slice assignment, which runs in C, and handed over with one
``memmove``; every other list type goes through wasmtime-py's own code. The
layout (``kind`` byte at 0, the ``u8`` at the union's offset) is read from
wasmtime-py's ctypes declarations, not assumed, and a value of another kind
in a list said to be bytes falls back to the original conversion.
"""

from __future__ import annotations

import ctypes
from typing import Any

from wasmtime import _ffi as ffi
from wasmtime.component import _types

__all__ = ["install"]

_VAL = ffi.wasmtime_component_val_t
_STRIDE = ctypes.sizeof(_VAL)
_PAYLOAD = _VAL.of.offset  # the union; a u8 member sits at its start
_KIND = _VAL.kind.offset
_U8 = ffi.WASMTIME_COMPONENT_U8.value
_LIST = ffi.WASMTIME_COMPONENT_LIST.value

_original_to_c = _types.ListType.convert_to_c
_original_from_c = _types.ListType.convert_from_c


def _to_c(self: _types.ListType, store: Any, val: Any, ptr: Any) -> None:
    if not isinstance(val, bytes) or not self._is_bytes():
        _original_to_c(self, store, val, ptr)
        return
    size = len(val)
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(raw, size)
    if size:
        block = bytearray(size * _STRIDE)
        block[_KIND::_STRIDE] = bytes((_U8,)) * size
        block[_PAYLOAD::_STRIDE] = val
        ctypes.memmove(raw.data, (ctypes.c_char * len(block)).from_buffer(block), len(block))
    ptr.contents.kind = ffi.WASMTIME_COMPONENT_LIST
    ptr.contents.of.list = raw


def _from_c(self: _types.ListType, c: Any) -> Any:
    if c.kind != _LIST or not self._is_bytes():
        return _original_from_c(self, c)
    size = c.of.list.size
    block = ctypes.string_at(c.of.list.data, size * _STRIDE) if size else b""
    if block[_KIND::_STRIDE] != bytes((_U8,)) * size:
        return _original_from_c(self, c)  # not what a byte list holds: the slow, checked way
    try:
        return block[_PAYLOAD::_STRIDE]
    finally:
        ffi.wasmtime_component_valtuple_delete(ctypes.byref(c.of.tuple))


def install() -> None:
    """Use the one-copy conversion for every ``list<u8>`` (idempotent)."""
    _types.ListType.convert_to_c = _to_c  # type: ignore[method-assign]
    _types.ListType.convert_from_c = _from_c  # type: ignore[method-assign]
