"""The console's routes and CORS, through a real server (in-process uvicorn)."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from pydantic import SecretStr, ValidationError

from app.asgi import create_app
from app.debug import CORS_EXPOSE_HEADERS
from app.settings import Settings
from tests._clients import METHOD
from tests._servers import BIN, ROOT, free_port, thread_server
from tests._tokens import SECRET, caller_token

ORIGIN = "http://console.example:3000"


def _settings(tmp: Path, **overrides: object) -> Settings:
    return Settings(
        auth_enabled=False,
        extensions_dir=ROOT / "examples" / "extensions",
        module_cache_dir=tmp,
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def console_on(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = _settings(
        tmp_path_factory.mktemp("cache"), debug_console=True, cors_allowed_origins=[ORIGIN]
    )
    with thread_server(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def console_off(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with thread_server(create_app(_settings(tmp_path_factory.mktemp("cache")))) as url:
        yield url


def test_console_is_off_by_default(console_off: str) -> None:
    assert Settings().debug_console is False
    assert Settings().cors_allowed_origins == []
    for path in ("/debug", "/debug/extensions", "/debug/static/console.js"):
        assert httpx.get(console_off + path).status_code == 404, path
    # No CORS either: a preflight gets no allowance.
    preflight = httpx.options(
        console_off + METHOD,
        headers={"origin": ORIGIN, "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_page_and_bundle(console_on: str) -> None:
    page = httpx.get(console_on + "/debug")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script type="module" src="/debug/static/console.js">' in page.text
    assert "//" not in page.text.replace("://", ""), "the page loads nothing from elsewhere"
    bundle = httpx.get(console_on + "/debug/static/console.js")
    assert bundle.status_code == 200
    assert "javascript" in bundle.headers["content-type"]
    assert b"application/grpc-web" in bundle.content  # the TS client's gRPC-web transport
    assert httpx.get(console_on + "/debug/static/console.css").status_code == 200
    for escape in ("/debug/static/%2e%2e/%2e%2e/settings.py", "/debug/static/..%2f_console.py"):
        assert httpx.get(console_on + escape).status_code == 404, escape


def test_extension_listing(console_on: str) -> None:
    listing = httpx.get(console_on + "/debug/extensions").json()["extensions"]
    by_id = {entry["id"]: entry for entry in listing}
    assert {"echo", "hello", "spin", "wordcount", "enrich"} <= set(by_id)
    hello = by_id["hello"]
    assert hello["promoted"] == "1.0.0"
    assert hello["versions"][0]["version"] == "1.0.0"
    assert hello["versions"][0]["abi"] == "wasi-stdio"
    assert hello["versions"][0]["disabled"] is None
    assert "Greets by name" in hello["versions"][0]["description"]
    assert "sha256" not in str(listing)  # names and descriptions only


def test_cors_preflight_allows_connect_and_grpc_web(console_on: str) -> None:
    wanted = (
        "content-type,connect-protocol-version,connect-timeout-ms,x-grpc-web,x-user-agent,"
        "authorization,grpc-timeout"
    )
    preflight = httpx.options(
        console_on + METHOD,
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": wanted,
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    allowed = preflight.headers["access-control-allow-headers"].lower()
    for header in wanted.split(","):
        assert header in allowed
    refused = httpx.options(
        console_on + METHOD,
        headers={"origin": "http://evil.example", "access-control-request-method": "POST"},
    )
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


def test_grpc_web_error_headers_are_exposed(console_on: str) -> None:
    """A browser can read a gRPC-web failure only through exposed headers."""
    request = runtime_pb.InvokeExtensionRequest(extension_id="nope")
    body = request.to_binary()
    response = httpx.post(
        console_on + METHOD,
        content=b"\x00" + len(body).to_bytes(4, "big") + body,
        headers={
            "origin": ORIGIN,
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
        },
    )
    assert response.headers["access-control-allow-origin"] == ORIGIN
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {h.lower() for h in CORS_EXPOSE_HEADERS} <= exposed
    assert {"grpc-status", "grpc-message", "grpc-status-details-bin"} <= exposed
    # The status travels in headers (trailers-only) or in the body's trailer frame.
    trailers = dict(response.headers)
    if "grpc-status" not in trailers:
        frame = response.content
        assert frame[0] == 0x80, "expected a gRPC-web trailer frame"
        text = frame[5 : 5 + int.from_bytes(frame[1:5], "big")].decode()
        trailers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in text.split("\r\n") if line)
        }
    assert trailers["grpc-status"] == "5"
    details = trailers["grpc-status-details-bin"]
    assert b"ameide.extensions.v1.InvocationError" in base64.b64decode(details + "==")


def test_origins_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXTENSIONS_RUNTIME_CORS_ALLOWED_ORIGINS", "http://a:1, http://b:2")
    assert Settings().cors_allowed_origins == ["http://a:1", "http://b:2"]
    monkeypatch.setenv("EXTENSIONS_RUNTIME_CORS_ALLOWED_ORIGINS", '["*"]')
    monkeypatch.setenv("EXTENSIONS_RUNTIME_AUTH_ENABLED", "false")
    assert Settings().cors_allowed_origins == ["*"]


# With caller auth on: the listing needs the RPC's token, and CORS "*" is refused.

ISSUER = "https://issuer.test"


@pytest.fixture(scope="module")
def console_with_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = _settings(
        tmp_path_factory.mktemp("cache"),
        debug_console=True,
        cors_allowed_origins=[ORIGIN],
    ).model_copy(
        update={
            "auth_enabled": True,
            "auth_hs256_secret": SecretStr(SECRET),
            "auth_issuer": ISSUER,
        }
    )
    with thread_server(create_app(settings)) as url:
        yield url


def test_listing_needs_the_rpc_token_when_auth_is_on(console_with_auth: str) -> None:
    url = console_with_auth + "/debug/extensions"
    for headers in (
        {},
        {"origin": ORIGIN},
        {"authorization": "Bearer not-a-jwt"},
        {"authorization": f"Bearer {caller_token(secret='another-secret-' * 4, iss=ISSUER)}"},
        {"authorization": f"Bearer {caller_token(ttl=-60, iss=ISSUER)}"},
    ):
        refused = httpx.get(url, headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "extensions" not in refused.json()
        assert "hello" not in refused.text
    allowed = httpx.get(url, headers={"authorization": f"Bearer {caller_token(iss=ISSUER)}"})
    assert allowed.status_code == 200
    assert "hello" in {entry["id"] for entry in allowed.json()["extensions"]}
    # The page itself is static and holds no data: it still loads, and asks for a token.
    assert httpx.get(console_with_auth + "/debug").status_code == 200


def test_wildcard_cors_with_auth_on_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match='cors_allowed_origins "\\*" is refused'):
        Settings(cors_allowed_origins=["*"], auth_hs256_secret=SecretStr(SECRET))
    with pytest.raises(ValidationError, match="is refused while caller auth is on"):
        Settings(cors_allowed_origins=[ORIGIN, "*"], auth_hs256_secret=SecretStr(SECRET))
    assert Settings(cors_allowed_origins=["*"], auth_enabled=False).cors_allowed_origins == ["*"]

    env = {
        **os.environ,
        "EXTENSIONS_RUNTIME_CORS_ALLOWED_ORIGINS": "*",
        "EXTENSIONS_RUNTIME_AUTH_HS256_SECRET": SECRET,
        "EXTENSIONS_RUNTIME_AUTH_ISSUER": ISSUER,
        "EXTENSIONS_RUNTIME_EXTENSIONS_DIR": str(ROOT / "examples" / "extensions"),
        "EXTENSIONS_RUNTIME_MODULE_CACHE_DIR": str(tmp_path),
    }
    args = [str(BIN / "extensions-runtime"), "serve", "--server", "uvicorn"]
    done = subprocess.run(
        [*args, "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "cli.invalid_settings" in done.stderr + done.stdout
    assert "is refused while caller auth is on" in done.stderr + done.stdout
