"""Host-call tokens: asymmetric signing, the public JWKS, rotation, and what a verifier refuses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from app import _hotfile
from app.hostcalls import (
    HostCallSigner,
    TokenUnavailable,
    UnknownKeyError,
    check_settings,
    parse_signing_keys,
    verify_dev_token,
    verify_token,
)
from app.hostcalls import _tokens as tokens_module
from app.invocation import ExecutionContext
from app.settings import Settings
from tests._hostcall_keys import new_key, private_jwk, write_keys

CONTEXT = ExecutionContext(
    tenant_id="t1", organization_id="o1", user_id="u1", request_id="req-1", caller="process"
)
ISSUER = Settings().hostcall_token_issuer
RELOAD_S = 1.2  # the key file is checked at most once a second


def _signer(path: Path, **over: Any) -> HostCallSigner:
    return HostCallSigner(Settings(hostcall_signing_keys_file=path, **over))


def _mint(signer: HostCallSigner, audience: str = "graph", **over: Any) -> str:
    return signer.mint(
        context=CONTEXT, extension_id="enrich", version="1.0.0", audience=audience, **over
    )


def _verify(token: str, jwks: dict[str, Any], audience: str = "graph") -> dict[str, Any]:
    return verify_token(token, jwks=jwks, audience=audience, issuer=ISSUER)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 token built by hand: PyJWT itself refuses PEM keys as HMAC secrets."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return write_keys(tmp_path / "hostcall-keys.json", (new_key(), "k1", "current"))


@pytest.fixture
def interval_passes(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Moves the key file's clock past its check interval instead of sleeping through it
    (the file itself is still stat-ed and re-read for real)."""
    skipped = [0.0]
    clock = types.SimpleNamespace(monotonic=lambda: time.monotonic() + skipped[0])
    monkeypatch.setattr(_hotfile, "time", clock)

    def later() -> None:
        skipped[0] += RELOAD_S

    return later


# ---- minting and verifying -----------------------------------------------------------


@pytest.mark.parametrize(("kind", "algorithm"), [("Ed25519", "EdDSA"), ("P-256", "ES256")])
def test_minted_tokens_verify_with_the_published_keys(
    tmp_path: Path, kind: str, algorithm: str
) -> None:
    signer = _signer(write_keys(tmp_path / "keys.json", (new_key(kind), "k1", "current")))
    now = time.time()
    token = _mint(signer, now=now)
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"]) == (algorithm, "k1")
    claims = _verify(token, signer.jwks())
    assert claims["iss"] == ISSUER
    assert claims["aud"] == "graph"
    assert (claims["sub"], claims["tenant_id"], claims["organization_id"]) == ("u1", "t1", "o1")
    assert (claims["extension_id"], claims["extension_version"]) == ("enrich", "1.0.0")
    assert claims["request_id"] == "req-1"
    assert claims["iat"] == int(now)
    assert claims["exp"] - claims["iat"] == Settings().hostcall_token_ttl_s
    assert signer.mode == "asymmetric"


def test_every_token_is_unique(key_file: Path) -> None:
    signer = _signer(key_file)
    ids = {jwt.decode(_mint(signer), options={"verify_signature": False})["jti"] for _ in range(50)}
    assert len(ids) == 50


def test_the_jwks_holds_public_keys_only(tmp_path: Path) -> None:
    path = write_keys(
        tmp_path / "keys.json",
        (new_key(), "a", "current"),
        (new_key("P-256"), "b", "next"),
        (new_key(), "c", "previous"),
    )
    document = _signer(path).jwks()
    assert [key["kid"] for key in document["keys"]] == ["a", "b", "c"]
    for key in document["keys"]:
        assert "d" not in key and "status" not in key
        assert key["use"] == "sig"
        assert key["alg"] in ("EdDSA", "ES256")
    assert '"d":' not in json.dumps(document, separators=(",", ":"))  # no private member


def test_token_is_bound_to_audience_issuer_and_time(key_file: Path) -> None:
    signer = _signer(key_file)
    jwks = signer.jwks()
    with pytest.raises(jwt.InvalidAudienceError):
        _verify(_mint(signer), jwks, audience="workflows")
    with pytest.raises(jwt.InvalidIssuerError):
        verify_token(_mint(signer), jwks=jwks, audience="graph", issuer="someone-else")
    stale = _mint(signer, now=time.time() - Settings().hostcall_token_ttl_s - 2)
    with pytest.raises(jwt.ExpiredSignatureError):
        _verify(stale, jwks)


# ---- a verifier cannot mint -------------------------------------------------------------


def test_a_token_signed_with_another_key_is_refused(key_file: Path, tmp_path: Path) -> None:
    jwks = _signer(key_file).jwks()
    # The same kid, another key: what a service holding only the public key could try.
    forger = _signer(write_keys(tmp_path / "forged.json", (new_key(), "k1", "current")))
    with pytest.raises(jwt.InvalidSignatureError):
        _verify(_mint(forger), jwks)
    stranger = _signer(write_keys(tmp_path / "other.json", (new_key(), "other", "current")))
    with pytest.raises(UnknownKeyError):
        _verify(_mint(stranger), jwks)


@pytest.mark.parametrize("secret_from", ["pem", "raw", "jwk-json", "x-member"])
def test_hs256_with_the_public_key_as_secret_is_refused(key_file: Path, secret_from: str) -> None:
    """The classic algorithm-confusion attack, by someone holding only the JWKS."""
    signer = _signer(key_file)
    jwks = signer.jwks()
    public_jwk = jwks["keys"][0]
    public = jwt.PyJWK(public_jwk).key
    secret = {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "raw": public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
        "jwk-json": json.dumps(public_jwk).encode(),
        "x-member": public_jwk["x"].encode(),
    }[secret_from]
    claims = jwt.decode(_mint(signer), options={"verify_signature": False})
    claims["tenant_id"] = "t-victim"
    forged = _hs256({"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims, secret)
    with pytest.raises(jwt.InvalidTokenError):
        _verify(forged, jwks)


def test_unsigned_tokens_are_refused(key_file: Path) -> None:
    signer = _signer(key_file)
    claims = jwt.decode(_mint(signer), options={"verify_signature": False})
    header = _b64(json.dumps({"alg": "none", "kid": "k1"}).encode())
    unsigned = f"{header}.{_b64(json.dumps(claims).encode())}."
    with pytest.raises(jwt.InvalidTokenError):
        _verify(unsigned, signer.jwks())


# ---- HS256 is a dev option only -------------------------------------------------------------


def test_hs256_is_refused_outside_dev() -> None:
    settings = Settings(hostcall_token_secret=SecretStr("dev-secret-dev-secret-0123456789ab"))
    with pytest.raises(ValueError, match="local development only"):
        check_settings(settings)
    with pytest.raises(ValueError, match="local development only"):
        HostCallSigner(settings)


def test_hs256_in_dev_signs_but_publishes_nothing() -> None:
    secret = "dev-secret-dev-secret-0123456789ab"
    signer = HostCallSigner(Settings(dev=True, hostcall_token_secret=SecretStr(secret)))
    assert signer.mode == "hs256-dev"
    assert signer.jwks() == {"keys": []}
    token = _mint(signer)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = verify_dev_token(token, secret=secret, audience="graph", issuer=ISSUER)
    assert claims["tenant_id"] == "t1"


def test_keys_and_secret_together_are_refused(key_file: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        check_settings(
            Settings(
                dev=True,
                hostcall_signing_keys_file=key_file,
                hostcall_token_secret=SecretStr("dev-secret-dev-secret-0123456789ab"),
            )
        )


def test_no_key_no_token() -> None:
    signer = HostCallSigner(Settings())
    assert signer.mode == "off"
    assert signer.jwks() == {"keys": []}
    with pytest.raises(TokenUnavailable):
        _mint(signer)


def test_an_empty_jwks_verifies_nothing(key_file: Path) -> None:
    with pytest.raises(UnknownKeyError):
        _verify(_mint(_signer(key_file)), {"keys": []})


# ---- the key file -----------------------------------------------------------------------------


def test_a_pem_key_is_the_current_key_named_by_its_thumbprint(tmp_path: Path) -> None:
    key = new_key()
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    signer = _signer(pem)
    (published,) = signer.jwks()["keys"]
    x = published["x"]
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    assert published["kid"] == _b64(hashlib.sha256(canonical.encode()).digest())
    assert _verify(_mint(signer), signer.jwks())["tenant_id"] == "t1"


def _set(*entries: dict[str, Any]) -> str:
    return json.dumps({"keys": list(entries)})


def _bad_key_files() -> list[tuple[str, str]]:
    a, b = new_key(), new_key()
    current_a = private_jwk(a, "a", "current")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_only = {k: v for k, v in current_a.items() if k != "d"}
    mismatched = {**current_a, "x": private_jwk(b, "b", "current")["x"]}
    return [
        (_set(current_a, private_jwk(b, "b", "current")), "exactly one key"),
        (_set(private_jwk(a, "a", "next")), "exactly one key"),
        (_set(public_only), "needs its private part"),
        (_set(current_a, private_jwk(b, "a", "previous")), "distinct 'kid'"),
        (_set({**current_a, "kid": "bad kid\n"}), "'kid'"),
        (_set({**current_a, "status": "active"}), "'status'"),
        (_set({**current_a, "alg": "HS256"}), "'alg'"),
        (_set(mismatched), "does not match|not a valid key"),
        (_set({"kty": "oct", "k": "c2VjcmV0", "kid": "h", "status": "current"}), "only Ed25519"),
        (rsa_pem, "only Ed25519"),
        ("not a key", "neither a PEM"),
        (json.dumps({"keys": []}), "1 to 8 keys"),
    ]


@pytest.mark.parametrize(("text", "complaint"), _bad_key_files())
def test_bad_key_files_are_refused_without_echoing_key_material(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint) as info:
        parse_signing_keys(text)
    for value in _private_values(text):
        assert value not in str(info.value)


def _private_values(text: str) -> list[str]:
    try:
        document = json.loads(text)
    except ValueError:
        return []
    return [entry["d"] for entry in document.get("keys", []) if "d" in entry]


def test_a_bad_key_file_refuses_to_start(tmp_path: Path) -> None:
    bad = tmp_path / "keys.json"
    bad.write_text(_set(private_jwk(new_key(), "a", "next")))
    with pytest.raises(ValueError, match="HOSTCALL_SIGNING_KEYS_FILE: exactly one key"):
        check_settings(Settings(hostcall_signing_keys_file=bad))
    with pytest.raises(ValueError, match="HOSTCALL_SIGNING_KEYS_FILE: No such file"):
        check_settings(Settings(hostcall_signing_keys_file=tmp_path / "missing.json"))


# ---- rotation ------------------------------------------------------------------------------------


def test_rotation_keeps_every_token_in_flight_verifiable(
    tmp_path: Path, interval_passes: Callable[[], None]
) -> None:
    old, new = new_key(), new_key("P-256")
    path = write_keys(tmp_path / "keys.json", (old, "2026-11", "current"))
    signer = _signer(path)
    by_old = _mint(signer)

    # 1. The new key is published as "next" before it signs.
    write_keys(path, (old, "2026-11", "current"), (new, "2026-12", "next"))
    interval_passes()
    assert [k["kid"] for k in signer.jwks()["keys"]] == ["2026-11", "2026-12"]
    assert jwt.get_unverified_header(_mint(signer))["kid"] == "2026-11"

    # 2. It becomes current; the old key stays published as "previous".
    write_keys(path, (new, "2026-12", "current"), (old, "2026-11", "previous"))
    interval_passes()
    by_new = _mint(signer)
    header = jwt.get_unverified_header(by_new)
    assert (header["kid"], header["alg"]) == ("2026-12", "ES256")
    jwks = signer.jwks()
    assert [k["kid"] for k in jwks["keys"]] == ["2026-12", "2026-11"]
    assert _verify(by_old, jwks)["tenant_id"] == "t1"  # kid selects the previous key
    assert _verify(by_new, jwks)["tenant_id"] == "t1"

    # 3. Dropped from the file too early: this process still publishes it for the overlap.
    write_keys(path, (new, "2026-12", "current"))
    interval_passes()
    jwks = signer.jwks()
    assert [k["kid"] for k in jwks["keys"]] == ["2026-12", "2026-11"]
    assert _verify(by_old, jwks)["tenant_id"] == "t1"

    # 4. Past TTL + overlap it is gone, and its tokens no longer verify.
    later = time.monotonic() + Settings().hostcall_token_ttl_s + tokens_module.OVERLAP_S + 1
    clock = types.SimpleNamespace(time=time.time, monotonic=lambda: later)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tokens_module, "time", clock)
        jwks = signer.jwks()
    assert [k["kid"] for k in jwks["keys"]] == ["2026-12"]
    with pytest.raises(UnknownKeyError):
        _verify(by_old, jwks)


def test_a_bad_edit_keeps_the_last_good_keys(
    key_file: Path, interval_passes: Callable[[], None]
) -> None:
    signer = _signer(key_file)
    before = signer.jwks()
    key_file.write_text('{"keys": [{"kty": "OKP"')
    interval_passes()
    assert signer.jwks() == before
    assert _verify(_mint(signer), before)["tenant_id"] == "t1"
    assert signer.reload_failures == 1
