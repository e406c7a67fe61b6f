"""A real JWKS endpoint for tests: serves EC keys, counts fetches, can be made to hang."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests._servers import route_server
from tests._tokens import ISSUER

AUDIENCE = "extensions-runtime"


@dataclass
class JwksServer:
    url: str = ""
    keys: dict[str, ec.EllipticCurvePrivateKey] = field(default_factory=dict)
    fetches: int = 0
    hanging: bool = False

    def add_key(self, kid: str) -> None:
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())

    def document(self) -> dict[str, Any]:
        entries = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
            jwk.update(kid=kid, use="sig", alg="ES256")
            entries.append(jwk)
        return {"keys": entries}

    def token(self, kid: str, tenant: str = "t1", *, sign_with: str | None = None) -> str:
        """A caller token with header ``kid``, signed by ``sign_with``'s key (default: kid's)."""
        key = self.keys[sign_with or kid]
        now = int(time.time())
        claims = {
            "sub": "u1",
            "tenant_id": tenant,
            "aud": AUDIENCE,
            "iss": ISSUER,
            "exp": now + 300,
        }
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})

    def stranger(self) -> str:
        """A token naming a random kid the endpoint does not have."""
        kid = f"random-{uuid.uuid4().hex}"
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        try:
            return self.token(kid)
        finally:
            del self.keys[kid]


def jwks_server() -> Iterator[JwksServer]:
    """Generator for a fixture: the endpoint is ``server.url + "/jwks.json"``."""
    state = JwksServer()
    state.add_key("k1")

    async def jwks(_: Request) -> JSONResponse:
        state.fetches += 1
        while state.hanging:
            await asyncio.sleep(0.05)
        return JSONResponse(state.document())

    with route_server(Route("/jwks.json", jwks, methods=["GET"])) as url:
        state.url = url + "/jwks.json"
        try:
            yield state
        finally:
            state.hanging = False
