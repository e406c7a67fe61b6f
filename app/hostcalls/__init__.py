"""Host calls: risk-tier policy, scoped tokens and the HTTP bridge to platform services."""

from app.hostcalls.policy import DENY_ALL, Ceilings, Policy, PolicyStore, Tier, parse_policy

__all__ = ["DENY_ALL", "Ceilings", "Policy", "PolicyStore", "Tier", "parse_policy"]
