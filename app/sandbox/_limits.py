"""The hard limits one invocation runs under.

An extension's manifest *asks* for limits; the operator's settings (and, above
them, a risk tier and any degradation) cap what it may ask; the caller's
deadline caps the time. All of those are stated as one type,
:class:`app.limits.DeclaredLimits`; the sandbox only ever sees the result,
:class:`Limits`, so every limit has a single source of truth per invocation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.limits import LIMIT_FIELDS, DeclaredLimits
from app.settings import LimitBounds

__all__ = ["DeclaredLimits", "LimitBounds", "Limits", "effective_limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Effective limits of one invocation; every field is enforced by the sandbox."""

    fuel: int
    """Wasm fuel units (roughly one per instruction) before FUEL_EXHAUSTED."""
    memory_bytes: int
    """Largest linear memory; a bigger declaration or grow is MEMORY_LIMIT."""
    timeout_ms: int
    """Wall-clock budget for instantiation plus the call."""
    output_bytes: int
    """Largest output; more is OUTPUT_TOO_LARGE."""
    log_bytes: int
    """Guest log bytes kept; the rest is dropped and marked truncated."""
    max_host_calls: int
    """``host_call`` invocations answered; later ones are denied to the guest."""


def effective_limits(
    declared: DeclaredLimits,
    bounds: LimitBounds,
    remaining_ms: float | None,
    *,
    ceiling: DeclaredLimits | None = None,
) -> Limits:
    """The lowest of: declared (else the default), the maximum, ``ceiling`` and the deadline.

    ``ceiling`` is an optional further cap (a risk tier's, an operator's
    degradation, or both already combined with :meth:`DeclaredLimits.lowest`).
    ``remaining_ms`` is the caller's time left; at or below zero the timeout
    becomes 0 and the runner fails the invocation with TIMEOUT before starting
    the guest.
    """
    cap = bounds.maximum.lowest(ceiling)  # states every field, as the maximum does
    default = bounds.default
    values: dict[str, int] = {}
    for name in LIMIT_FIELDS:
        asked = getattr(declared, name)
        if asked is None:
            asked = getattr(default, name)
        bound = getattr(cap, name)
        values[name] = asked if asked <= bound else bound
    if remaining_ms is not None:
        values["timeout_ms"] = max(0, min(values["timeout_ms"], math.floor(remaining_ms)))
    return Limits(**values)
