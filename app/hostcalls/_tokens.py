"""Scoped, short-lived, asymmetrically signed tokens for host calls.

Every host call carries a JWT minted for that one call, expiring
``hostcall_token_ttl_s`` seconds after it was issued, naming the invocation's
tenant, organization, user, request, extension and version, with the target
service as its audience. The guest never sees it.

Why asymmetric: a platform service that receives a token must be able to
verify it but never to mint one. With one shared HS256 secret every receiving
service could forge tokens for every other service, as any tenant and user.
So tokens are signed with Ed25519 (``EdDSA``) or P-256 (``ES256``) keys from a
mounted secret (:mod:`app.hostcalls._keys`), and the public halves are served
as a JWKS document at :data:`JWKS_PATH`. Rotation: a ``next`` key is published
before it signs; the key that stops signing stays published (as ``previous``
in the file, and in this process for at least :data:`OVERLAP_S` past the
token TTL even when the file drops it), so every token in flight verifies.

HS256 with ``hostcall_token_secret`` remains for local work only: it is
refused unless ``dev`` is on, and it publishes no keys.

Without keys nothing is minted (:class:`TokenUnavailable`) and the bridge
answers ``unavailable``: an unsigned token is never sent.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any

import jwt
from jwt import PyJWKSet

from app._hotfile import HotFile
from app.hostcalls._keys import ALGORITHMS, KeySet, parse_signing_keys
from app.invocation import ExecutionContext
from app.settings import Settings
from app.telemetry import get_logger

__all__ = [
    "ALGORITHMS",
    "DEV_ALGORITHM",
    "JWKS_PATH",
    "OVERLAP_S",
    "REQUIRED_CLAIMS",
    "HostCallSigner",
    "TokenUnavailable",
    "UnknownKeyError",
    "check_settings",
    "verify_dev_token",
    "verify_token",
]

_log = get_logger("app.hostcalls.tokens")
JWKS_PATH = "/.well-known/hostcall-jwks.json"
DEV_ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "iat", "exp", "jti", "tenant_id")
VERIFIER_LEEWAY_S = 30
"""The most clock leeway a verifying service should allow (documented for them)."""
OVERLAP_S = VERIFIER_LEEWAY_S + 30
"""Beyond the TTL, how long a key that stopped signing stays published by this process."""


class TokenUnavailable(Exception):
    """No host-call token can be minted (no key configured)."""


class UnknownKeyError(jwt.InvalidTokenError):
    """The token names no ``kid`` the verifier knows for an allowed algorithm."""


def check_settings(settings: Settings) -> None:
    """Refuse configurations that would sign badly; raises ``ValueError``.

    Called before the server starts (a clear error, exit status 2) and again
    when the signer is built.
    """
    has_secret = bool(
        settings.hostcall_token_secret and settings.hostcall_token_secret.get_secret_value()
    )
    if has_secret and not settings.dev:
        raise ValueError(
            "EXTENSIONS_RUNTIME_HOSTCALL_TOKEN_SECRET (HS256) is for local development only:"
            " every service holding it could mint host-call tokens. Mount signing keys with"
            " EXTENSIONS_RUNTIME_HOSTCALL_SIGNING_KEYS_FILE instead"
        )
    if has_secret and settings.hostcall_signing_keys_file is not None:
        raise ValueError(
            "set either EXTENSIONS_RUNTIME_HOSTCALL_SIGNING_KEYS_FILE or the dev-only"
            " _HOSTCALL_TOKEN_SECRET, not both"
        )
    if settings.hostcall_signing_keys_file is not None:
        try:
            parse_signing_keys(settings.hostcall_signing_keys_file.read_text())
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise ValueError(f"EXTENSIONS_RUNTIME_HOSTCALL_SIGNING_KEYS_FILE: {reason}") from None


class HostCallSigner:
    """Mints host-call tokens and publishes the keys that verify them; one per runtime.

    The key file is re-read when it changes (at most once a second); a bad
    edit keeps the last good keys and counts a reload failure.
    """

    def __init__(self, settings: Settings) -> None:
        check_settings(settings)
        self._issuer = settings.hostcall_token_issuer
        self._ttl = settings.hostcall_token_ttl_s
        self._retain_s = float(settings.hostcall_token_ttl_s + OVERLAP_S)
        self._secret: bytes | None = None
        self._file: HotFile[KeySet | None] | None = None
        self._lock = threading.Lock()
        self._seen: KeySet | None = None
        self._retired: dict[str, tuple[dict[str, str], float]] = {}
        if settings.hostcall_signing_keys_file is not None:
            self._file = HotFile(
                settings.hostcall_signing_keys_file,
                parse_signing_keys,
                None,
                name="hostcall_keys",
            )
            self._seen = self._file.current()
            if self._seen is None:  # checked above; the file changed in between
                raise ValueError(f"hostcall_signing_keys_file: {self._file.last_error}")
        elif settings.hostcall_token_secret is not None:
            value = settings.hostcall_token_secret.get_secret_value()
            self._secret = value.encode() if value else None
            if self._secret:
                _log.warning(
                    "hostcall.tokens_hs256_dev",
                    message="host-call tokens are HS256 with a shared secret (dev only): "
                    "any service holding it can mint tokens",
                )

    @property
    def mode(self) -> str:
        """``asymmetric``, ``hs256-dev`` or ``off``."""
        if self._file is not None:
            return "asymmetric"
        return "hs256-dev" if self._secret else "off"

    @property
    def reload_failures(self) -> int:
        return self._file.reload_failures if self._file is not None else 0

    def _keys(self) -> KeySet | None:
        """The current key set; keys a reload dropped are kept published for a while."""
        if self._file is None:
            return None
        keys = self._file.current()
        if keys is not self._seen:
            with self._lock:
                if keys is not self._seen and self._seen is not None and keys is not None:
                    kept = {key.kid for key in keys.keys}
                    until = time.monotonic() + self._retain_s
                    for key in self._seen.keys:
                        if key.kid not in kept:
                            self._retired[key.kid] = (dict(key.public_jwk), until)
                    for kid in kept:
                        self._retired.pop(kid, None)
                    _log.info("hostcall.keys_rotated", current=keys.current.kid)
                self._seen = keys
        return keys

    def mint(
        self,
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
        issued_at = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": audience,
            "sub": context.user_id,
            "tenant_id": context.tenant_id,
            "organization_id": context.organization_id,
            "extension_id": extension_id,
            "extension_version": version,
            "request_id": context.request_id,
            "iat": issued_at,
            "exp": issued_at + self._ttl,
            "jti": secrets.token_urlsafe(16),
        }
        keys = self._keys()
        private = keys.current.private if keys is not None else None
        if keys is not None and private is not None:
            current = keys.current
            return jwt.encode(
                claims, private, algorithm=current.algorithm, headers={"kid": current.kid}
            )
        if self._secret:
            return jwt.encode(claims, self._secret, algorithm=DEV_ALGORITHM)
        raise TokenUnavailable("host calls are not configured: no signing key")

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document: current, next, previous, then recently dropped keys."""
        keys = self._keys()
        if keys is None:
            return {"keys": []}
        published = keys.public_jwks()
        now = time.monotonic()
        with self._lock:
            for kid, (jwk, until) in list(self._retired.items()):
                if until <= now:
                    del self._retired[kid]
                else:
                    published.append(dict(jwk))
        return {"keys": published}


def _key_for(token: str, keys: PyJWKSet) -> Any:
    kid = jwt.get_unverified_header(token).get("kid")
    for key in keys.keys:
        if kid is not None and key.key_id == kid and key.algorithm_name in ALGORITHMS:
            return key
    raise UnknownKeyError("the token names no known host-call key")


def verify_token(
    token: str,
    *,
    jwks: Mapping[str, Any] | PyJWKSet,
    audience: str,
    issuer: str,
    leeway_s: float = 0,
) -> dict[str, Any]:
    """Check a host-call token as a receiving service should; the reference verifier.

    ``jwks`` is the document served at :data:`JWKS_PATH`. The key is chosen by
    the token's ``kid`` and the only algorithm accepted is that key's own
    (``EdDSA`` or ``ES256``), so an ``HS256`` token "signed" with the public
    key as its secret is refused. Checks the signature, ``exp``, the audience
    (the receiving service's own name), the issuer and that every scoping
    claim is present; raises ``jwt.InvalidTokenError`` otherwise.
    """
    try:
        keys = jwks if isinstance(jwks, PyJWKSet) else PyJWKSet.from_dict(dict(jwks))
    except jwt.PyJWKSetError:  # no usable key at all (e.g. the empty set of dev mode)
        raise UnknownKeyError("the JWKS holds no usable key") from None
    key = _key_for(token, keys)
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=[key.algorithm_name],
        audience=audience,
        issuer=issuer,
        leeway=leeway_s,
        options={"require": list(REQUIRED_CLAIMS)},
    )
    return claims


def verify_dev_token(
    token: str, *, secret: str, audience: str, issuer: str, leeway_s: float = 0
) -> dict[str, Any]:
    """:func:`verify_token` for the dev-only HS256 mode."""
    claims: dict[str, Any] = jwt.decode(
        token,
        secret.encode(),
        algorithms=[DEV_ALGORITHM],
        audience=audience,
        issuer=issuer,
        leeway=leeway_s,
        options={"require": list(REQUIRED_CLAIMS)},
    )
    return claims
