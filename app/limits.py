"""Limits as someone states them: a definition, a risk tier, an operator, the settings.

One type for all of them, because they are compared with each other on
every call: a definition *asks* for limits, a risk tier and an operator's
degradation put *ceilings* on them, and the settings hold the defaults and
maxima. Whatever states them, the same six fields mean the same thing, and
the answer is always the lowest of what applies (:meth:`DeclaredLimits.lowest`);
``app.sandbox._limits`` turns that into the complete limits a guest runs under.

A leaf, like ``app.errors``: the catalog, the tier policy, the controls and the
sandbox all speak it without importing each other.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LIMIT_FIELDS", "NO_LIMITS", "DeclaredLimits"]

LIMIT_FIELDS = ("fuel", "memory_bytes", "timeout_ms", "output_bytes", "max_host_calls", "log_bytes")
"""Every limit by name, in the order definitions are written (published JSON is compared
byte for byte, so the order of the fields below stays as it was)."""


class DeclaredLimits(BaseModel):
    """Limits as stated; ``None`` means "not stated here" (a default or another bound applies).

    Validated wherever it is read (definitions from storage, tiers from the
    policy file, degradations from the controls file or the admin RPC): a zero
    or negative limit is a publishing mistake, not "unlimited", so it is
    refused where it is made rather than guessed at. Only ``max_host_calls``
    and ``log_bytes`` may be 0 (no host calls; keep no logs).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fuel: int | None = Field(default=None, gt=0)
    """Wasm fuel units (roughly one per instruction) before FUEL_EXHAUSTED."""
    memory_bytes: int | None = Field(default=None, gt=0)
    """Largest linear memory; a bigger declaration or grow is MEMORY_LIMIT."""
    timeout_ms: int | None = Field(default=None, gt=0)
    """Wall-clock budget for instantiation plus the call."""
    output_bytes: int | None = Field(default=None, gt=0)
    """Largest output; more is OUTPUT_TOO_LARGE."""
    max_host_calls: int | None = Field(default=None, ge=0)
    """``host_call`` invocations answered; later ones are denied to the guest."""
    log_bytes: int | None = Field(default=None, ge=0)
    """Guest log bytes kept; the rest is dropped and marked truncated."""

    def lowest(self, *others: DeclaredLimits | None) -> DeclaredLimits:
        """Field by field, the lowest value any of them states (unstated where none does).

        On the hot path: with nothing else stated the receiver itself is
        returned, and a combination is built without validating again (the
        least of valid values is valid).
        """
        # Nothing set, nothing stated: an empty tier's or a definition's default.
        stated = [self] if self.model_fields_set else []
        stated += [o for o in others if o is not None and o.model_fields_set]
        if len(stated) <= 1:
            return stated[0] if stated else NO_LIMITS
        values: dict[str, int] = {}
        for name in LIMIT_FIELDS:
            least: int | None = None
            for limits in stated:
                value = getattr(limits, name)
                if value is not None and (least is None or value < least):
                    least = value
            if least is not None:
                values[name] = least
        return DeclaredLimits.model_construct(None, **values)


NO_LIMITS = DeclaredLimits()
"""Nothing stated: what a definition without ``limits`` or a tier without ceilings has."""
