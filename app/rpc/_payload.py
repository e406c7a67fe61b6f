"""Conversions between ``google.protobuf.Value`` payloads and the bytes a guest sees.

These serve the binary codecs (Connect proto, gRPC, gRPC-web); the JSON codec
keeps payloads as JSON text instead (``app/rpc/_exact.py``). Guests read and
write UTF-8 JSON text; ``google.protobuf.Value`` stores every number as a
double, so integral numbers are turned back into integers before the guest
sees them (``1`` stays ``1``, not ``1.0``; the SDK's helper,
``ameide_extensions_client.values``, so both ends read numbers alike), and
integers beyond 2**53 arrive rounded: binary callers who need them exact
send ``input_bytes`` and ask for ``OUTPUT_FORMAT_BYTES``, as the SDKs do.

Only JSON that every wire codec can carry becomes ``output_json``: a guest
writing ``NaN``, ``1e999``, a 400-digit integer, a lone surrogate escape
(``"\\ud800"``) or JSON nested more than 50 levels deep (protobuf-py encodes
at most 100 nested messages, two per level) gets its output back as
``output_bytes`` instead of a response that fails to encode (found by the RPC
fuzz in tests/reliability, and the depth by the native parser's tests).
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from ameide_extensions_client.values import integral
from protobuf import Oneof
from protobuf.wkt import Value

from app.errors import ErrorKind, InvocationFailure

__all__ = [
    "MAX_JSON_DEPTH",
    "OFF_LOOP_BYTES",
    "depth_ok",
    "input_bytes",
    "parse_json_output",
    "parse_json_output_async",
    "utf8_ok",
]

MAX_JSON_DEPTH = 64
OFF_LOOP_BYTES = 64 * 1024
"""Outputs larger than this are parsed on a worker thread, not the event loop
(an authenticated 1 MiB JSON array took 2.3 s of event-loop time)."""


def depth_ok(obj: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Checks nesting depth without recursion, so hostile input cannot blow the stack."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


def input_bytes(payload: Oneof[str, Any] | None) -> bytes:
    """The bytes handed to the guest for a request's ``input`` oneof."""
    if payload is None:
        return b""
    if payload.field == "input_bytes":
        data: bytes = payload.value
        return data
    value: Value = payload.value
    return _native_json(value) or _input_exactly(value)


def _native_json(value: Value) -> bytes | None:
    """protobuf-py's own JSON for ``value`` where it is ours byte for byte, else None.

    It writes what ``json.dumps`` writes below (compact, the same escapes, the
    same float digits: ``tests/rpc/test_payload.py`` compares every code point
    and 40,000 doubles) in ~2 µs against ~10 for a 1 KiB echo, except integral
    numbers: it keeps ``1.0`` where guests get ``1``. A text with no ``.0`` in
    it has none; one with ``.0`` anywhere, even in a string, takes the exact
    path, as do NaN, Infinity and a value with no kind set (it raises for them).
    """
    try:
        text = value.to_json()
    except (ValueError, RecursionError):
        return None
    if ".0" in text:
        return None
    return text.encode()


def _input_exactly(value: Value) -> bytes:
    try:
        python = value.to_python()
    except RecursionError:
        python = None
        ok = False
    except ValueError:  # a Value with no kind set, anywhere inside (fuzzed binary input)
        raise InvocationFailure(
            ErrorKind.INVALID_INPUT, "input_json holds a value with no kind set"
        ) from None
    else:
        ok = depth_ok(python)
    if not ok:
        raise InvocationFailure(
            ErrorKind.INVALID_INPUT, f"input_json is nested deeper than {MAX_JSON_DEPTH} levels"
        )
    try:
        text = json.dumps(
            integral(python), separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError:  # a binary Value may carry NaN or Infinity; JSON cannot
        raise InvocationFailure(
            ErrorKind.INVALID_INPUT, "input_json contains NaN or Infinity, which JSON cannot carry"
        ) from None
    return text.encode()


def _finite(text: str) -> float:
    """A JSON number as ``Value`` will hold it; out of a double's range is not JSON here."""
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("number out of range")
    return number


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def utf8_ok(obj: Any) -> bool:
    """No lone surrogates in any string or key (they cannot be encoded as UTF-8)."""
    stack: list[Any] = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode()
                except UnicodeEncodeError:
                    return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


_INFINITIES = (b"\x00\x00\x00\x00\x00\x00\xf0\x7f", b"\x00\x00\x00\x00\x00\x00\xf0\xff")
"""+inf and -inf as a ``Value``'s double is encoded (little-endian IEEE 754)."""


def parse_json_output(output: bytes) -> Value | None:
    """The guest output as a JSON Value, or None when it is not JSON every codec can carry.

    protobuf-py's native parser reads a 1 KiB echo in ~2 µs where ``json.loads``,
    the checks and ``Value.from_python`` take ~18. It refuses everything the
    exact parser below refuses (invalid UTF-8, lone surrogates, ``NaN``, nesting
    a binary ``Value`` cannot be encoded with) and a few things it accepts (a
    byte-order mark, UTF-16), but reads ``1e999`` as infinity. So what it
    accepts is kept unless its encoding holds an infinity, and what it refuses
    is decided by the exact parser (``tests/rpc/test_payload.py`` compares them).
    """
    try:
        value = Value.from_json(output)
    except Exception:  # noqa: BLE001 - whatever it refuses, the exact parser decides
        return _parse_exactly(output)
    encoded = value.to_binary()
    if _INFINITIES[0] in encoded or _INFINITIES[1] in encoded:
        return None
    return value


def _parse_exactly(output: bytes) -> Value | None:
    try:
        python = json.loads(
            output, parse_float=_finite, parse_int=_finite, parse_constant=_reject_constant
        )
    except (ValueError, RecursionError):
        return None
    if not depth_ok(python):
        return None
    # Surrogates can only come from \\u escapes or CESU-8 bytes (json decodes with
    # surrogatepass); skip the walk for the usual output that has neither.
    if (b"\\u" in output or b"\xed" in output) and not utf8_ok(python):
        return None
    value = Value.from_python(python)
    try:
        value.to_binary()
    except RecursionError:  # past protobuf-py's 100 messages: 50 levels of JSON
        return None
    return value


async def parse_json_output_async(output: bytes) -> Value | None:
    """:func:`parse_json_output`, on a worker thread when ``output`` is large."""
    if len(output) <= OFF_LOOP_BYTES:
        return parse_json_output(output)
    return await asyncio.to_thread(parse_json_output, output)
