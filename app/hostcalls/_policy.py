"""Risk tiers: limit ceilings and host-call allowlists, from a hot-reloaded file.

Tiers are operator configuration, not code, so an operator can tighten a tier
at 3 a.m. by editing a ConfigMap. Deny by default: an unknown tier allows no
host calls, and a call must match both the tier's allowlist and the
extension's own requested calls. A bad file is logged and the last good policy
stays in force.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from app._hotfile import HotFile
from app._ids import POLICY_ALLOW_PATTERN, TIER_PATTERN, fullmatch
from app.limits import NO_LIMITS, DeclaredLimits

__all__ = [
    "DENY_ALL",
    "Policy",
    "PolicyDocument",
    "PolicyStore",
    "Tier",
    "parse_policy",
]


class Tier(BaseModel):
    """One risk tier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    allow: tuple[str, ...] = Field(default=(), max_length=256)
    ceilings: DeclaredLimits = NO_LIMITS
    """Upper bounds the tier puts on any extension's declared limits."""
    real_clock_and_random: bool = False


class PolicyDocument(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tiers: dict[str, Tier]


def _matches(patterns: tuple[str, ...], target: str) -> bool:
    return any(fnmatch.fnmatchcase(target, pattern) for pattern in patterns)


@dataclass(frozen=True, slots=True)
class Policy:
    """An immutable snapshot; readers never see a half-loaded file."""

    tiers: dict[str, Tier]

    def tier(self, name: str) -> Tier | None:
        return self.tiers.get(name)

    def allows(self, tier: str, requested: tuple[str, ...], service: str, method: str) -> bool:
        """Whether ``service/method`` is in tier allowlist ∩ the definition's requests."""
        known = self.tiers.get(tier)
        if known is None:
            return False
        target = f"{service}/{method}"
        return _matches(known.allow, target) and _matches(requested, target)


DENY_ALL = Policy(tiers={})


def parse_policy(text: str) -> Policy:
    """Parse and validate a policy document (YAML or JSON)."""
    raw: Any = yaml.safe_load(text)
    document = PolicyDocument.model_validate(raw)
    for name, tier in document.tiers.items():
        if not fullmatch(TIER_PATTERN, name):
            raise ValueError(f"tier name {name!r} is invalid")
        for pattern in tier.allow:
            if not fullmatch(POLICY_ALLOW_PATTERN, pattern):
                raise ValueError(f"tier {name}: allow pattern {pattern!r} is not 'service/method'")
    return Policy(tiers=dict(document.tiers))


class PolicyStore(HotFile[Policy]):
    """The current policy, reloaded when the file changes (deny-all without a file)."""

    def __init__(self, path: Path | None, *, check_interval_s: float = 1.0) -> None:
        super().__init__(path, parse_policy, DENY_ALL, name="policy", interval_s=check_interval_s)
