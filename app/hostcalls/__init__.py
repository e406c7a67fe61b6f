"""Host calls: risk-tier policy, scoped tokens and the HTTP bridge to platform services."""

from app.hostcalls.bridge import HostCallErrorKind, HttpBridge, InvocationBridge, OutcomeCounter
from app.hostcalls.policy import DENY_ALL, Ceilings, Policy, PolicyStore, Tier, parse_policy
from app.hostcalls.tokens import TokenUnavailable, mint_token, verify_token

__all__ = [
    "DENY_ALL",
    "Ceilings",
    "HostCallErrorKind",
    "HttpBridge",
    "InvocationBridge",
    "OutcomeCounter",
    "Policy",
    "PolicyStore",
    "Tier",
    "TokenUnavailable",
    "mint_token",
    "parse_policy",
    "verify_token",
]
