"""Caller tokens for tests."""

from __future__ import annotations

import time
from typing import Any

import jwt

SECRET = "test-caller-secret-with-enough-bytes-0123456789"
AUDIENCE = "extensions-runtime"
ISSUER = "https://issuer.test.ameide.io"
"""The issuer test servers with auth on are configured with (required outside dev)."""


def caller_token(
    tenant: str = "t1",
    org: str = "o1",
    user: str = "u1",
    *,
    secret: str = SECRET,
    ttl: int = 3600,  # tokens minted at collection time must outlive a slow run
    audience: str = AUDIENCE,
    **extra: Any,
) -> str:
    now = int(time.time())
    claims = {
        "sub": user,
        "tenant_id": tenant,
        "organization_id": org,
        "aud": audience,
        "iss": ISSUER,
        "iat": now,
        "exp": now + ttl,
        **extra,
    }
    return jwt.encode(claims, secret, algorithm="HS256")
