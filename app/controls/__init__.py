"""Operator controls: kill switches, degradations, breakers, rate limits and turns."""

from app.controls._breaker import (
    GUEST_FAULTS,
    BreakerConfig,
    Breakers,
    BreakerState,
    Permit,
    Refusal,
    VersionKey,
)
from app.controls._gate import TenantGate, Turn, off_turn
from app.controls._killswitches import (
    PLATFORM_OWNER,
    Controls,
    Decision,
    Degradation,
    Switch,
    Target,
    parse_controls,
)
from app.controls._ratelimit import Rate, RateLimitConfig, RateLimiter, TenantLimit

__all__ = [
    "GUEST_FAULTS",
    "PLATFORM_OWNER",
    "BreakerConfig",
    "BreakerState",
    "Breakers",
    "Controls",
    "Decision",
    "Degradation",
    "Permit",
    "Rate",
    "RateLimitConfig",
    "RateLimiter",
    "Refusal",
    "Switch",
    "Target",
    "TenantGate",
    "TenantLimit",
    "Turn",
    "VersionKey",
    "off_turn",
    "parse_controls",
]
