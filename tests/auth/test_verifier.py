from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from app.auth import Authenticator, AuthError, PermissionDenied, Unauthenticated, bind
from app.invocation import ExecutionContext
from app.settings import Settings
from tests._tokens import AUDIENCE, ISSUER, SECRET, caller_token


def _auth(**over: object) -> Authenticator:
    values: dict[str, object] = {"auth_hs256_secret": SecretStr(SECRET), "auth_issuer": ISSUER}
    return Authenticator(Settings(**{**values, **over}))  # type: ignore[arg-type]


def test_valid_token_binds_identity_into_empty_context() -> None:
    principal = _auth().authenticate("Bearer " + caller_token("t9", "o9", "u9", scope="a b"))
    assert principal is not None
    assert principal.scopes == {"a", "b"}
    bound = bind(principal, ExecutionContext(request_id="r"))
    assert (bound.tenant_id, bound.organization_id, bound.user_id) == ("t9", "o9", "u9")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "bearer token is required"),
        ("Basic abc", "bearer token is required"),
        ("Bearer " + caller_token(ttl=-60), "expired"),
        ("Bearer " + caller_token(secret="another-secret-entirely-0123456789abc"), "invalid"),
        ("Bearer " + caller_token(audience="someone-else"), "invalid"),
        ("Bearer not.a.jwt", "invalid"),
    ],
)
def test_bad_tokens_are_unauthenticated(header: str | None, message: str) -> None:
    with pytest.raises(Unauthenticated) as info:
        _auth().authenticate(header)
    assert message in info.value.message


def test_issuer_is_checked() -> None:
    auth = _auth(auth_issuer="https://issuer.ameide.io")
    with pytest.raises(AuthError):
        auth.authenticate("Bearer " + caller_token())
    good = caller_token(iss="https://issuer.ameide.io")
    assert auth.authenticate("Bearer " + good) is not None


def test_context_contradicting_the_token_is_permission_denied() -> None:
    principal = _auth().authenticate("Bearer " + caller_token("t1"))
    with pytest.raises(PermissionDenied):
        bind(principal, ExecutionContext(tenant_id="t2"))


def test_asymmetric_keys_from_a_jwks_file(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="k1", use="sig", alg="RS256")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    auth = Authenticator(Settings(auth_jwks_file=tmp_path / "jwks.json", auth_issuer=ISSUER))
    now = int(time.time())
    claims = {"sub": "u", "tenant_id": "t", "aud": "extensions-runtime", "exp": now + 60}
    claims["iss"] = ISSUER
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    principal = auth.authenticate("Bearer " + token)
    assert principal is not None and principal.tenant_id == "t"
    # HS256 is refused when no shared secret is configured (no alg confusion).
    with pytest.raises(AuthError):
        auth.authenticate("Bearer " + caller_token())


def test_auth_on_without_keys_refuses_to_start() -> None:
    with pytest.raises(ValueError, match="no key is configured"):
        Authenticator(Settings(auth_issuer=ISSUER))


def test_auth_on_without_an_issuer_refuses_to_start_outside_dev() -> None:
    with pytest.raises(ValueError, match="EXTENSIONS_RUNTIME_AUTH_ISSUER"):
        Authenticator(Settings(auth_hs256_secret=SecretStr(SECRET)))
    # dev may run without one, and auth off needs none.
    Authenticator(Settings(auth_hs256_secret=SecretStr(SECRET), dev=True))
    Authenticator(Settings(auth_enabled=False))


@pytest.mark.parametrize(
    "token",
    [
        caller_token(iss="https://another-issuer.example"),
        caller_token(iss=ISSUER + "/"),
        caller_token(iss=""),
    ],
    ids=["another-issuer", "near-miss", "empty-issuer"],
)
def test_tokens_from_another_issuer_are_unauthenticated(token: str) -> None:
    with pytest.raises(Unauthenticated):
        _auth().authenticate("Bearer " + token)


@pytest.mark.parametrize(
    "claims",
    [
        {"tenant_id": None},  # str() made this the tenant "None", shared by all such tokens
        {"tenant_id": ["a", "b"]},
        {"tenant_id": 7},
        {"tenant_id": ""},
        {"tenant_id": "t1\n"},
        {"tenant_id": "../t1"},
        {"tenant_id": "t" * 129},
        {"organization_id": None},
        {"organization_id": ["o1"]},
        {"organization_id": "o1\x00"},
        {"organization_id": "o" * 257},
        {"user_id": None},
        {"user_id": 42},
    ],
)
def test_claims_of_the_wrong_shape_are_unauthenticated(claims: dict[str, object]) -> None:
    base = {"sub": "u1", "tenant_id": "t1", "organization_id": "o1", "aud": AUDIENCE, "iss": ISSUER}
    token = jwt.encode({**base, "exp": int(time.time()) + 60, **claims}, SECRET, algorithm="HS256")
    with pytest.raises(Unauthenticated):
        _auth().authenticate("Bearer " + token)


def test_a_token_without_iss_is_unauthenticated() -> None:
    claims = jwt.decode(caller_token(), options={"verify_signature": False, "verify_aud": False})
    del claims["iss"]
    with pytest.raises(Unauthenticated):
        _auth().authenticate("Bearer " + jwt.encode(claims, SECRET, algorithm="HS256"))


def test_absent_organization_is_empty_and_absent_tenant_is_refused_at_bind() -> None:
    now = int(time.time())
    claims = {"sub": "u1", "aud": AUDIENCE, "iss": ISSUER, "exp": now + 60}
    principal = _auth().authenticate("Bearer " + jwt.encode(claims, SECRET, algorithm="HS256"))
    assert principal is not None
    assert (principal.tenant_id, principal.organization_id, principal.user_id) == ("", "", "u1")
    with pytest.raises(PermissionDenied):
        bind(principal, ExecutionContext(request_id="r"))


@pytest.mark.parametrize(
    ("extra", "scopes"),
    [
        ({"scope": "extensions-runtime:admin other"}, {"extensions-runtime:admin", "other"}),
        ({"scope": ["extensions-runtime:admin"]}, set()),  # a list is ignored: fail closed
        ({"scp": "extensions-runtime:admin"}, set()),
        ({"scp": ["extensions-runtime:admin"]}, set()),
        ({"scope": 1}, set()),
    ],
)
def test_scope_is_only_a_space_separated_string(extra: dict[str, object], scopes: set[str]) -> None:
    principal = _auth().authenticate("Bearer " + caller_token(**extra))
    assert principal is not None
    assert principal.scopes == scopes
