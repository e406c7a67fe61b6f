"""JSON numbers as ``google.protobuf.Value`` carries them, back as Python would write them.

``Value`` holds every number as a double, so ``1`` arrives as ``1.0``. Both ends
of ``InvokeExtension`` turn integral doubles within the exactly representable
range back into ``int``: the SDK for an ``output_json`` it is handed, and the
runtime (which imports this module) for an ``input_json`` it hands to a guest.
"""

from __future__ import annotations

from typing import Any

_MAX_SAFE_INT = 2**53


def integral(obj: Any) -> Any:
    """``obj`` with every integral float in ±2**53 as an ``int``, recursively."""
    if isinstance(obj, float):
        if obj.is_integer() and -_MAX_SAFE_INT <= obj <= _MAX_SAFE_INT:
            return int(obj)
        return obj
    if isinstance(obj, dict):
        return {k: integral(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [integral(v) for v in obj]
    return obj
