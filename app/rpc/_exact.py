"""JSON text as the caller and the guest wrote it, for the JSON wire codecs.

``google.protobuf.Value`` stores every number as a double: ``9007199254740993``
becomes ``9007199254740992`` and ``12345678901234567890`` becomes
``1.2345678901234567e+19`` on the way in, and protobuf-py writes ``2`` back as
``2.0``. Over a JSON codec (Connect JSON, and ``+json`` on the other protocols)
none of that is necessary, because both sides already are JSON text. So the
JSON codec (``app/rpc/_codec.py``) cuts the ``inputJson`` member's text out of
the request body and hands the guest that text, and splices the guest's own
JSON text into the response as ``outputJson``: numbers are never parsed into
doubles. This module holds the text-level parts:

* :func:`split_input`: the request body's top-level members walked with the
  stdlib's C scanner, the ``inputJson`` value checked (JSON, nested at most
  :data:`~app.rpc._payload.MAX_JSON_DEPTH` deep, no number token longer than
  :data:`MAX_NUMBER_CHARS`), and handed back as compact text;
* :func:`output_text`: the guest output as JSON text every JSON reader can
  take (strict UTF-8, no lone surrogates, same depth and number bounds), or
  None when it is not JSON.

:data:`MAX_NUMBER_CHARS` is Python's own default ``int`` digit limit, so an
answer never holds a number the Python SDK (or any stdlib ``json`` reader)
refuses to read.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from app.rpc._payload import MAX_JSON_DEPTH, OFF_LOOP_BYTES, depth_ok, utf8_ok

__all__ = [
    "INPUT_KEYS",
    "MAX_NUMBER_CHARS",
    "BodyShape",
    "InputRefused",
    "NotExactJSON",
    "check_input",
    "compact",
    "output_text",
    "output_text_async",
    "split_input",
]

MAX_NUMBER_CHARS = 4300
"""Longest JSON number token accepted in input_json or served as outputJson."""

INPUT_KEYS = frozenset({"inputJson", "input_json"})
"""The names a JSON request may give the ``input_json`` field."""
_BYTES_KEYS = frozenset({"inputBytes", "input_bytes"})

_WS = re.compile(r"[ \t\n\r]*")
_ANY_WS = re.compile(r"[ \t\n\r]")
# A JSON string token (the unrolled form: no per-character backtracking state),
# or a run of insignificant whitespace outside strings.
_STRING_OR_WS = re.compile(r'("[^"\\]*(?:\\.[^"\\]*)*")|[ \t\n\r]+', re.DOTALL)


class NotExactJSON(ValueError):
    """JSON syntax the exact path refuses (a constant, an overlong number)."""


def _number(token: str) -> str:
    """A number token, kept as its text (never a double, never a huge ``int``)."""
    if len(token) > MAX_NUMBER_CHARS:
        raise NotExactJSON(f"a number is longer than {MAX_NUMBER_CHARS} characters")
    return token


def _constant(name: str) -> Any:
    raise NotExactJSON(f"{name} is not JSON")


_EXACT = json.JSONDecoder(parse_float=_number, parse_int=_number, parse_constant=_constant)
"""Validates JSON without converting numbers: they stay strings of their text."""
_PLAIN = json.JSONDecoder(parse_int=str, parse_float=str)
"""Walks the other members: numbers stay text, so none is too long for ``int``."""


class BodyShape(ValueError):
    """The body is not a plain JSON object: protobuf-py's parser says what is wrong."""


class InputRefused(ValueError):
    """input_json is JSON the runtime refuses (too deep, a constant, an overlong number)."""


def compact(text: str) -> str:
    """Valid JSON ``text`` without insignificant whitespace; tokens unchanged."""
    if _ANY_WS.search(text) is None:
        return text
    return _STRING_OR_WS.sub(r"\1", text)


def check_input(text: str, start: int) -> tuple[int, str]:
    """(end, compact text) of the input_json value at ``start``; :class:`InputRefused` when bad."""
    try:
        value, end = _EXACT.raw_decode(text, start)
    except NotExactJSON as exc:
        raise InputRefused(f"input_json: {exc}") from None
    if not depth_ok(value):
        raise InputRefused(f"input_json is nested deeper than {MAX_JSON_DEPTH} levels")
    return end, compact(text[start:end])


def split_input(text: str) -> tuple[str, str] | None:
    """``(body with input_json's value replaced by null, input_json as compact text)``.

    None when the body has no input_json member. Raises :class:`BodyShape`
    (or ``ValueError`` / ``RecursionError`` from the scanner) when the body is
    not a plain JSON object, so the caller can let protobuf-py report the
    problem in its own words; :class:`InputRefused` when input_json itself is
    refused, given twice, or given with input_bytes.
    """
    i = _skip(text, 0)
    if text[i : i + 1] != "{":
        raise BodyShape("not a JSON object")
    i = _skip(text, i + 1)
    more = text[i : i + 1] != "}"
    if not more:
        i += 1
    found: tuple[int, int, str] | None = None
    names: set[str] = set()
    while more:
        name, start = _name(text, i)
        names.add(name)
        if name in INPUT_KEYS:
            if found is not None:
                raise InputRefused("input_json is given more than once")
            end, compacted = check_input(text, start)
            found = (start, end, compacted)
        else:
            _, end = _PLAIN.raw_decode(text, start)
        i, more = _next(text, end)
    if _skip(text, i) != len(text):
        raise BodyShape("extra data after the object")
    if found is None:
        return None
    if names & _BYTES_KEYS:  # protobuf-py would keep the last one; a oneof set twice is a mistake
        raise InputRefused("input_json and input_bytes are both set")
    start, end, compacted = found
    return text[:start] + "null" + text[end:], compacted


def _skip(text: str, i: int) -> int:
    """The index after the JSON whitespace at ``i``."""
    match = _WS.match(text, i)
    return match.end() if match else i


def _name(text: str, i: int) -> tuple[str, int]:
    """``"name" :`` at ``i``: (the name, the index of the member's value)."""
    if text[i : i + 1] != '"':
        raise BodyShape("expected a member name")
    name, i = _PLAIN.raw_decode(text, i)  # a JSON string, since it starts with '"'
    i = _skip(text, i)
    if text[i : i + 1] != ":":
        raise BodyShape("expected ':'")
    return name, _skip(text, i + 1)


def _next(text: str, end: int) -> tuple[int, bool]:
    """After a member's value: (next member's index, True), or (index after '}', False)."""
    i = _skip(text, end)
    separator = text[i : i + 1]
    if separator == ",":
        return _skip(text, i + 1), True
    if separator == "}":
        return i + 1, False
    raise BodyShape("expected ',' or '}'")


def output_text(output: bytes) -> bytes | None:
    """The guest output as JSON text for ``outputJson``, or None when it is not such JSON.

    JSON here means what every reader takes: strict UTF-8 (no BOM, no CESU-8
    surrogates), no lone ``\\u`` surrogate escapes, no NaN or Infinity, nested
    at most :data:`~app.rpc._payload.MAX_JSON_DEPTH` deep and no number longer
    than :data:`MAX_NUMBER_CHARS` characters. The text is the guest's own,
    without surrounding whitespace; numbers of any precision pass unchanged.
    """
    try:
        text = output.decode()
        value = _EXACT.decode(text)
    except (ValueError, RecursionError):
        return None
    if not depth_ok(value):
        return None
    if "\\u" in text and not utf8_ok(value):
        return None
    return output.strip(b" \t\n\r")


async def output_text_async(output: bytes) -> bytes | None:
    """:func:`output_text`, on a worker thread when ``output`` is large."""
    if len(output) <= OFF_LOOP_BYTES:
        return output_text(output)
    return await asyncio.to_thread(output_text, output)
