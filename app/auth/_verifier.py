"""Caller authentication: verify the bearer JWT and bind it to the ExecutionContext.

The ExecutionContext is what host calls are scoped to, so it must be the
caller's real identity: a context naming another tenant than the token is
refused (:class:`PermissionDenied`), and empty context fields are filled from
the token. Tokens are verified with an HS256 shared secret (dev/test) or with
asymmetric keys from a JWKS file or URL (production); expiry, audience and
issuer are always checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import jwt
from jwt import PyJWKSet

from app._ids import TENANT_PATTERN, fullmatch
from app.auth._jwks import JwksCache
from app.invocation import ExecutionContext
from app.settings import Settings
from app.telemetry import get_logger

__all__ = [
    "AuthError",
    "Authenticator",
    "PermissionDenied",
    "Principal",
    "Unauthenticated",
    "bind",
    "check_settings",
]

_log = get_logger("app.auth")
_ASYMMETRIC = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"]
_MAX_TOKEN_CHARS = 8192
_MAX_NAME_CHARS = 256


class AuthError(Exception):
    """The caller is refused. Which subclass says why, and so which wire code it gets.

    The kind used to be a string next to the message, and the two RPC services
    each turned it into a code of their own; a type leaves one reading.
    ``message`` goes on the wire: fixed text, never a token or a key.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthenticated(AuthError):
    """Who the caller is is not proven: no token, or one that is malformed,
    expired, from another issuer or signed with an unknown key."""


class PermissionDenied(AuthError):
    """The caller is known, and asks for what its token does not grant."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who the verified token says the caller is."""

    tenant_id: str
    organization_id: str
    user_id: str
    scopes: frozenset[str]
    subject: str


def check_settings(settings: Settings) -> None:
    """Refuse to start with caller auth on and no issuer, outside dev; raises ``ValueError``.

    Without an issuer a token from any issuer that the keys verify is accepted,
    e.g. one minted for another realm sharing the identity provider's keys.
    """
    if settings.auth_enabled and not settings.dev and not settings.auth_issuer:
        raise ValueError(
            "caller auth is on but EXTENSIONS_RUNTIME_AUTH_ISSUER is not set: tokens from any"
            " issuer would be accepted. Set it to the identity provider's issuer"
            " (only dev may run without it)"
        )


class Authenticator:
    """Verifies bearer tokens; with auth disabled everyone is anonymous."""

    def __init__(self, settings: Settings) -> None:
        check_settings(settings)
        self.enabled = settings.auth_enabled
        self._audience = settings.auth_audience
        self._issuer = settings.auth_issuer
        self._leeway = settings.auth_leeway_s
        self._secret = (
            settings.auth_hs256_secret.get_secret_value().encode()
            if settings.auth_hs256_secret
            else None
        )
        self._jwks: PyJWKSet | None = None
        self._jwks_client: JwksCache | None = None
        if settings.auth_jwks_file is not None:
            self._jwks = PyJWKSet.from_dict(json.loads(settings.auth_jwks_file.read_text()))
        if settings.auth_jwks_url:
            self._jwks_client = JwksCache(
                settings.auth_jwks_url,
                timeout_s=settings.auth_jwks_timeout_s,
                refresh_s=settings.auth_jwks_refresh_s,
                cooldown_s=settings.auth_jwks_cooldown_s,
            )
        if self.enabled and not (self._secret or self._jwks or self._jwks_client):
            raise ValueError(
                "caller auth is on but no key is configured: set EXTENSIONS_RUNTIME_AUTH_"
                "HS256_SECRET, _AUTH_JWKS_FILE or _AUTH_JWKS_URL (or _AUTH_ENABLED=false for dev)"
            )
        if not self.enabled:
            _log.warning(
                "auth.DISABLED",
                message="caller authentication is OFF: any caller may claim any tenant. "
                "Never run like this outside local development.",
            )

    def _key(self, token: str, header: dict[str, Any]) -> tuple[Any, list[str]]:
        if header.get("alg") == "HS256":
            if self._secret is None:
                raise Unauthenticated("HS256 tokens are not accepted")
            return self._secret, ["HS256"]
        kid = header.get("kid")
        if self._jwks is not None:
            for key in self._jwks.keys:
                if key.key_id == kid:
                    return key.key, _ASYMMETRIC
        if self._jwks_client is not None:
            cached = self._jwks_client.key(kid)  # fetched beforehand by prefetch()
            if cached is not None:
                return cached.key, _ASYMMETRIC
        raise Unauthenticated("token signed with an unknown key")

    async def prefetch(self, authorization: str | None) -> None:
        """Fetch the JWKS key the token names, if it comes from the URL and is not cached.

        Bounded and single-flight (see ``_jwks``); call it before :meth:`authenticate`,
        which only reads the cache.
        """
        if self._jwks_client is None or not authorization:
            return
        token = authorization[7:].strip()
        if len(token) > _MAX_TOKEN_CHARS:
            return
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            return
        kid = header.get("kid")
        if header.get("alg") == "HS256" or not isinstance(kid, str):
            return
        if self._jwks is not None and any(key.key_id == kid for key in self._jwks.keys):
            return
        await self._jwks_client.ensure(kid)

    async def authenticate_async(
        self, authorization: str | None, *, require: bool = False
    ) -> Principal | None:
        """:meth:`prefetch`, then :meth:`authenticate`."""
        if self.enabled or require:
            await self.prefetch(authorization)
        return self.authenticate(authorization, require=require)

    def authenticate(self, authorization: str | None, *, require: bool = False) -> Principal | None:
        """The caller's principal; ``None`` when auth is disabled and not ``require``d.

        ``require`` is for the admin surface, which never runs anonymously.
        """
        if not self.enabled and not require:
            return None
        if not (self._secret or self._jwks or self._jwks_client):
            raise Unauthenticated("no token keys are configured")
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Unauthenticated("a bearer token is required")
        token = authorization[7:].strip()
        if len(token) > _MAX_TOKEN_CHARS:
            raise Unauthenticated("token too large")
        try:
            header = jwt.get_unverified_header(token)
            key, algorithms = self._key(token, header)
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "sub", "aud", *(["iss"] if self._issuer else [])]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid token ({type(exc).__name__})") from None
        return _principal(claims)


def _name_claim(claims: dict[str, Any], name: str, *, default: str | None = None) -> str:
    """A claim that must be a short printable string (``default`` when absent)."""
    value = claims.get(name, default)
    if not isinstance(value, str) or not value or len(value) > _MAX_NAME_CHARS:
        raise Unauthenticated(f"claim {name} must be a non-empty string")
    if not value.isprintable():
        raise Unauthenticated(f"claim {name} has unprintable characters")
    return value


def _principal(claims: dict[str, Any]) -> Principal:
    """The principal from verified claims, typed rather than coerced.

    ``str()`` on a claim would make ``tenant_id: null`` the tenant ``"None"``
    (shared by every such token) and a list ``"['a', 'b']"``, so anything but
    the expected shape is ``unauthenticated``. The tenant must match the id
    pattern; an absent organization is empty. ``scope`` is read only as the
    space-separated string of RFC 8693; ``scp`` and a list are ignored, which
    fails closed (no scopes).
    """
    tenant = claims.get("tenant_id", "")  # absent: bind() refuses it, the admin RPC needs none
    if "tenant_id" in claims and not fullmatch(TENANT_PATTERN, tenant):
        raise Unauthenticated("claim tenant_id is not a tenant id")
    organization = claims.get("organization_id", "")
    if organization != "":
        organization = _name_claim(claims, "organization_id")
    subject = _name_claim(claims, "sub")
    scopes = claims.get("scope", "")
    return Principal(
        tenant_id=tenant,
        organization_id=organization,
        user_id=_name_claim(claims, "user_id", default=subject),
        scopes=frozenset(scopes.split()) if isinstance(scopes, str) else frozenset(),
        subject=subject,
    )


def bind(principal: Principal | None, context: ExecutionContext) -> ExecutionContext:
    """The context with the token's identity; a contradicting context is refused."""
    if principal is None:
        return context
    for field in ("tenant_id", "organization_id", "user_id"):
        given = getattr(context, field)
        if given and given != getattr(principal, field):
            raise PermissionDenied(f"context {field} does not match the caller's token")
    if not principal.tenant_id:
        raise PermissionDenied("the caller's token names no tenant")
    return replace(
        context,
        tenant_id=principal.tenant_id,
        organization_id=principal.organization_id,
        user_id=principal.user_id,
    )
