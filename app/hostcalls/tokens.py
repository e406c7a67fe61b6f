"""Scoped, short-lived tokens for host calls.

Every host call carries a JWT minted for that one call: HS256 with the
runtime's host-call secret, expiring ``hostcall_token_ttl_s`` seconds after it
was issued, naming the invocation's tenant, organization, user, request,
extension and version, with the target service as its audience, so a token
that leaks from one service cannot be replayed against another. The guest
never sees it.

Without a configured secret nothing is minted (:class:`TokenUnavailable`) and
the bridge answers ``unavailable``: an unsigned token is never sent.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt

from app.invocation import ExecutionContext
from app.settings import Settings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "iat", "exp", "jti", "tenant_id")


class TokenUnavailable(Exception):
    """No host-call token can be minted (no secret configured)."""


def _secret(settings: Settings) -> bytes:
    secret = settings.hostcall_token_secret
    value = secret.get_secret_value() if secret is not None else ""
    if not value:
        raise TokenUnavailable("host calls are not configured: no token secret")
    return value.encode()


def mint_token(
    settings: Settings,
    *,
    context: ExecutionContext,
    extension_id: str,
    version: str,
    audience: str,
    now: float | None = None,
) -> str:
    """A signed token for one host call to ``audience``; raises ``TokenUnavailable``.

    ``now`` (Unix seconds) is for tests; ``exp - iat`` is exactly the TTL.
    """
    key = _secret(settings)
    issued_at = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": settings.hostcall_token_issuer,
        "aud": audience,
        "sub": context.user_id,
        "tenant_id": context.tenant_id,
        "organization_id": context.organization_id,
        "extension_id": extension_id,
        "extension_version": version,
        "request_id": context.request_id,
        "iat": issued_at,
        "exp": issued_at + settings.hostcall_token_ttl_s,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def verify_token(
    settings: Settings,
    token: str,
    *,
    audience: str,
    leeway_s: float = 0,
) -> dict[str, Any]:
    """Decode and check a host-call token as a receiving service would.

    Checks the signature, ``exp``, the audience and the issuer and that every
    scoping claim is present; raises ``jwt.InvalidTokenError`` otherwise. Kept
    here as the reference for platform services and for tests.
    """
    claims: dict[str, Any] = jwt.decode(
        token,
        _secret(settings),
        algorithms=[ALGORITHM],
        audience=audience,
        issuer=settings.hostcall_token_issuer,
        leeway=leeway_s,
        options={"require": list(REQUIRED_CLAIMS)},
    )
    return claims
