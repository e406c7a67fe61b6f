"""Host-call signing keys, as read from the mounted secret.

The secret is a JWK Set of private keys, each with a ``kid`` and a
``status``: exactly one ``current`` (it signs), optionally ``next`` keys
(published, not yet signing) and ``previous`` keys (published, no longer
signing). A single PEM private key (or a single JWK) is also accepted and is
the current key; its ``kid`` is then its RFC 7638 thumbprint. Only Ed25519
(``EdDSA``) and P-256 (``ES256``) keys are accepted: both are small, fast,
and asymmetric, so a service that verifies a token cannot mint one.

Errors name the key by position or ``kid`` and never echo key material: the
message is logged when a bad edit is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from app._ids import KEY_ID_PATTERN, fullmatch

__all__ = ["ALGORITHMS", "KeySet", "KeyStatus", "SigningKey", "parse_signing_keys", "thumbprint"]

ALGORITHMS = ("EdDSA", "ES256")
"""The only algorithms host-call tokens are signed (and may be verified) with."""
MAX_KEYS = 8
_MAX_TEXT_CHARS = 64 * 1024

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


class KeyStatus(StrEnum):
    """Where a key is in its rotation."""

    CURRENT = "current"
    NEXT = "next"
    PREVIOUS = "previous"


@dataclass(frozen=True, slots=True, eq=False)
class SigningKey:
    """One key: its private half (when the secret holds it) and the public JWK we publish."""

    kid: str
    algorithm: str
    status: KeyStatus
    private: PrivateKey | None = field(repr=False)
    public_jwk: dict[str, str]


@dataclass(frozen=True, slots=True, eq=False)
class KeySet:
    """The parsed secret: the key that signs and every key to publish (current first)."""

    current: SigningKey
    keys: tuple[SigningKey, ...]

    def public_jwks(self) -> list[dict[str, str]]:
        return [dict(key.public_jwk) for key in self.keys]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(public_jwk: dict[str, str]) -> str:
    """RFC 7638 thumbprint (SHA-256) of a public OKP or EC JWK."""
    members = ("crv", "kty", "x", "y") if public_jwk["kty"] == "EC" else ("crv", "kty", "x")
    canonical = json.dumps(
        {name: public_jwk[name] for name in members}, separators=(",", ":"), sort_keys=True
    )
    return _b64(hashlib.sha256(canonical.encode()).digest())


def _public_jwk(public: PublicKey) -> tuple[str, dict[str, str]]:
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "EdDSA", dict(OKPAlgorithm.to_jwk(public, as_dict=True))
    if isinstance(public.curve, ec.SECP256R1):
        return "ES256", dict(ECAlgorithm.to_jwk(public, as_dict=True))
    raise ValueError("only Ed25519 (EdDSA) and P-256 (ES256) keys are accepted")


def _key(
    loaded: PrivateKey | PublicKey, *, kid: str | None, status: KeyStatus, declared: dict[str, Any]
) -> SigningKey:
    if isinstance(loaded, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        private: PrivateKey | None = loaded
        public: PublicKey = loaded.public_key()
    else:
        private, public = None, loaded
    algorithm, jwk = _public_jwk(public)
    for member in ("x", "y"):
        if member in declared and declared[member] != jwk.get(member):
            raise ValueError(f"its public part ({member!r}) does not match its private part")
    if "alg" in declared and declared["alg"] != algorithm:
        raise ValueError(f"its 'alg' must be {algorithm!r} for this key type")
    kid = kid if kid is not None else thumbprint(jwk)
    jwk.update(kid=kid, alg=algorithm, use="sig")
    return SigningKey(kid=kid, algorithm=algorithm, status=status, private=private, public_jwk=jwk)


def _from_jwk(entry: Any, *, default_status: KeyStatus | None) -> SigningKey:
    if not isinstance(entry, dict):
        raise ValueError("is not a JSON object")
    kid = entry.get("kid")
    if not fullmatch(KEY_ID_PATTERN, kid):
        raise ValueError("needs a 'kid' of 1-128 characters [A-Za-z0-9._:-]")
    status_value = entry.get("status", default_status)
    try:
        status = KeyStatus(str(status_value))
    except ValueError:
        raise ValueError(f"{kid}: 'status' must be current, next or previous") from None
    kty, crv = entry.get("kty"), entry.get("crv")
    try:
        if kty == "OKP" and crv == "Ed25519":
            loaded: PrivateKey | PublicKey = OKPAlgorithm.from_jwk(entry)  # type: ignore[assignment]
        elif kty == "EC" and crv == "P-256":
            loaded = ECAlgorithm.from_jwk(entry)
        else:
            raise ValueError("only Ed25519 (OKP) and P-256 (EC) keys are accepted")
    except Exception as exc:  # noqa: BLE001 - never echo what the library saw
        message = str(exc) if isinstance(exc, ValueError) else "is not a valid key"
        raise ValueError(f"{kid}: {message}") from None
    try:
        return _key(loaded, kid=kid, status=status, declared=entry)
    except ValueError as exc:
        raise ValueError(f"{kid}: {exc}") from None


def _from_pem(text: str) -> SigningKey:
    try:
        loaded = serialization.load_pem_private_key(text.encode(), password=None)
    except Exception:  # noqa: BLE001 - never echo what the library saw
        raise ValueError("the PEM file is not an unencrypted private key") from None
    if not isinstance(loaded, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("only Ed25519 (EdDSA) and P-256 (ES256) keys are accepted")
    return _key(loaded, kid=None, status=KeyStatus.CURRENT, declared={})


def parse_signing_keys(text: str) -> KeySet:
    """The key set in ``text`` (a JWK Set, one JWK or one PEM key); raises ``ValueError``."""
    if len(text) > _MAX_TEXT_CHARS:
        raise ValueError(f"the key file is larger than {_MAX_TEXT_CHARS} characters")
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        key = _from_pem(stripped)
        return KeySet(current=key, keys=(key,))
    try:
        document = json.loads(stripped)
    except ValueError:
        raise ValueError("the key file is neither a PEM private key nor JSON") from None
    if isinstance(document, dict) and "keys" in document:
        entries, default_status = document["keys"], None
    elif isinstance(document, dict) and "kty" in document:
        entries, default_status = [document], KeyStatus.CURRENT
    else:
        raise ValueError('the key file must be a JWK Set {"keys": [...]}, one JWK or a PEM key')
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_KEYS:
        raise ValueError(f"'keys' must list 1 to {MAX_KEYS} keys")
    keys: list[SigningKey] = []
    for index, entry in enumerate(entries):
        try:
            keys.append(_from_jwk(entry, default_status=default_status))
        except ValueError as exc:
            raise ValueError(f"key {index}: {exc}") from None
    kids = [key.kid for key in keys]
    if len(set(kids)) != len(kids):
        raise ValueError("every key needs a distinct 'kid'")
    current = [key for key in keys if key.status is KeyStatus.CURRENT]
    if len(current) != 1:
        raise ValueError(f"exactly one key must have status 'current', found {len(current)}")
    if current[0].private is None:
        raise ValueError(f"{current[0].kid}: the current key needs its private part ('d')")
    order = {KeyStatus.CURRENT: 0, KeyStatus.NEXT: 1, KeyStatus.PREVIOUS: 2}
    return KeySet(current=current[0], keys=tuple(sorted(keys, key=lambda k: order[k.status])))
