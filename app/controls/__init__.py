"""Operator controls: kill switches, degradations and circuit breakers."""

from app.controls.breaker import GUEST_FAULTS, BreakerConfig, Breakers, BreakerState
from app.controls.killswitches import (
    Controls,
    Decision,
    Degradation,
    Switch,
    Target,
    parse_controls,
)
from app.hostcalls.policy import Ceilings

__all__ = [
    "GUEST_FAULTS",
    "BreakerConfig",
    "BreakerState",
    "Breakers",
    "Ceilings",
    "Controls",
    "Decision",
    "Degradation",
    "Switch",
    "Target",
    "parse_controls",
]
