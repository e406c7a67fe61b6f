"""Conversions between wire payloads and the bytes a guest sees.

Guests read and write UTF-8 JSON text; ``google.protobuf.Value`` stores every
number as a double, so integral numbers are turned back into integers before
the guest sees them (``1`` stays ``1``, not ``1.0``).
"""

from __future__ import annotations

import json
from typing import Any

from protobuf import Oneof
from protobuf.wkt import Value

from app.errors import ErrorKind, InvocationFailure

MAX_JSON_DEPTH = 64
_MAX_SAFE_INT = 2**53


def _integral(obj: Any) -> Any:
    if isinstance(obj, float):
        if obj.is_integer() and -_MAX_SAFE_INT <= obj <= _MAX_SAFE_INT:
            return int(obj)
        return obj
    if isinstance(obj, dict):
        return {k: _integral(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_integral(v) for v in obj]
    return obj


def _depth_ok(obj: Any, limit: int = MAX_JSON_DEPTH) -> bool:
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
    try:
        python = value.to_python()
    except RecursionError:
        python = None
        ok = False
    else:
        ok = _depth_ok(python)
    if not ok:
        raise InvocationFailure(
            ErrorKind.INVALID_INPUT, f"input_json is nested deeper than {MAX_JSON_DEPTH} levels"
        )
    return json.dumps(_integral(python), separators=(",", ":"), ensure_ascii=False).encode()


def parse_json_output(output: bytes) -> Value | None:
    """The guest output as a JSON Value, or None when it is not JSON."""
    try:
        python = json.loads(output)
    except (ValueError, RecursionError):
        return None
    if not _depth_ok(python):
        return None
    return Value.from_python(python)
