"""Host-call signing key files for tests, in the format the chart's secret holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def new_key(kind: str = "Ed25519") -> PrivateKey:
    if kind == "Ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def private_jwk(key: PrivateKey, kid: str, status: str) -> dict[str, Any]:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        jwk = dict(OKPAlgorithm.to_jwk(key, as_dict=True))
    else:
        jwk = dict(ECAlgorithm.to_jwk(key, as_dict=True))
    jwk.update(kid=kid, status=status)
    return jwk


def write_keys(path: Path, *entries: tuple[PrivateKey, str, str]) -> Path:
    """Write a JWK Set of ``(key, kid, status)`` entries to ``path`` (atomically)."""
    document = {"keys": [private_jwk(key, kid, status) for key, kid, status in entries]}
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(document))
    partial.replace(path)
    return path
