"""The hard limits one invocation runs under.

An extension's manifest *asks* for limits; the operator's settings (and, above
them, a risk tier) cap what it may ask; the caller's deadline caps the time.
The sandbox only ever sees the result, :class:`Limits`, so every limit has a
single source of truth per invocation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from app.settings import Settings


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


@dataclass(frozen=True, slots=True)
class DeclaredLimits:
    """Limits as an extension definition (or a risk tier) states them; ``None`` = unset."""

    fuel: int | None = None
    memory_bytes: int | None = None
    timeout_ms: int | None = None
    output_bytes: int | None = None
    log_bytes: int | None = None
    max_host_calls: int | None = None

    def __post_init__(self) -> None:
        # A zero or negative limit is a publishing mistake, not "unlimited":
        # refuse it where it is made rather than guess.
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            floor = 0 if f.name in ("max_host_calls", "log_bytes") else 1
            if value < floor:
                raise ValueError(f"limit {f.name} must be >= {floor}, got {value}")


def effective_limits(
    declared: DeclaredLimits,
    settings: Settings,
    remaining_ms: float | None,
    *,
    ceiling: DeclaredLimits | None = None,
) -> Limits:
    """min(declared or the settings default, the settings maximum, ``ceiling``, deadline).

    ``ceiling`` is an optional further cap (a risk tier). ``remaining_ms`` is
    the caller's time left; at or below zero the timeout becomes 0 and the
    runner fails the invocation with TIMEOUT before starting the guest.
    """
    cap = ceiling or DeclaredLimits()

    def pick(asked: int | None, default: int, maximum: int, tier: int | None) -> int:
        value = min(default if asked is None else asked, maximum)
        return value if tier is None else min(value, tier)

    timeout_ms = pick(
        declared.timeout_ms, settings.default_timeout_ms, settings.max_timeout_ms, cap.timeout_ms
    )
    if remaining_ms is not None:
        timeout_ms = max(0, min(timeout_ms, math.floor(remaining_ms)))
    return Limits(
        fuel=pick(declared.fuel, settings.default_fuel, settings.max_fuel, cap.fuel),
        memory_bytes=pick(
            declared.memory_bytes,
            settings.default_memory_bytes,
            settings.max_memory_bytes,
            cap.memory_bytes,
        ),
        timeout_ms=timeout_ms,
        output_bytes=pick(
            declared.output_bytes,
            settings.default_output_bytes,
            settings.max_output_bytes,
            cap.output_bytes,
        ),
        log_bytes=pick(
            declared.log_bytes, settings.default_log_bytes, settings.max_log_bytes, cap.log_bytes
        ),
        max_host_calls=pick(
            declared.max_host_calls,
            settings.default_max_host_calls,
            settings.max_host_calls,
            cap.max_host_calls,
        ),
    )
