"""Host calls: risk-tier policy, scoped tokens and the HTTP bridge to platform services."""

from app.errors import HostCallErrorKind
from app.hostcalls._bridge import HttpBridge, InvocationBridge
from app.hostcalls._counts import OutcomeCounter
from app.hostcalls._keys import KeySet, KeyStatus, SigningKey, parse_signing_keys
from app.hostcalls._policy import DENY_ALL, Policy, PolicyStore, Tier, parse_policy
from app.hostcalls._tokens import (
    JWKS_PATH,
    HostCallSigner,
    TokenUnavailable,
    UnknownKeyError,
    check_settings,
    verify_dev_token,
    verify_token,
)

__all__ = [
    "DENY_ALL",
    "JWKS_PATH",
    "HostCallErrorKind",
    "HostCallSigner",
    "HttpBridge",
    "InvocationBridge",
    "KeySet",
    "KeyStatus",
    "OutcomeCounter",
    "Policy",
    "PolicyStore",
    "SigningKey",
    "Tier",
    "TokenUnavailable",
    "UnknownKeyError",
    "check_settings",
    "parse_policy",
    "parse_signing_keys",
    "verify_dev_token",
    "verify_token",
]
