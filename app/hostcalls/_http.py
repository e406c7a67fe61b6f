"""The HTTP side of host calls: one shared synchronous client, its caps and choices.

Why a synchronous client on the worker thread rather than the event loop's
async client: the worker is already a blocking thread, parked inside a wasm
call, so a blocking request there costs nothing extra. Hopping to the loop
(``run_coroutine_threadsafe``) would add two thread switches per call, put
host-call traffic on the loop that serves every other request, and still
leave the worker blocked waiting for it. The loop stays free and the
executor's bound on threads is also the bound on concurrent host calls, which
is what sizes the connection pool.

Why the transport bounds its own time: wasmtime's epoch interruption cannot
stop a host function, so a host call that hangs would hold the guest (and its
worker) past the invocation's deadline. Every call therefore gets a timeout of
at most the invocation's remaining time, and the transport
(:mod:`app.hostcalls._deadline`) clamps every socket operation to that
deadline, so a slow or dripping upstream cannot stretch it either.

Other choices: no redirects (a redirect would carry the scoped token to
wherever the upstream points), no environment proxies or netrc, no cookies
kept between calls (they would cross tenants), no compression (an upstream
cannot make the bridge inflate a small response past the cap), no retries (a
call may not be idempotent; the guest decides). Upstream headers are not
passed on, and a body that reflects the token verbatim has it (and its
signature) redacted.
"""

from __future__ import annotations

import http.cookiejar
import json
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from app import __version__
from app._ids import SERVICE_PATTERN, fullmatch
from app.errors import HostCallErrorKind
from app.hostcalls import _deadline
from app.hostcalls._errors import Refused
from app.hostcalls._request import strict_loads
from app.settings import Settings
from app.telemetry import get_logger

__all__ = ["ServiceClient", "service_urls"]

_log = get_logger("app.hostcalls")
_REDACTED = b"[redacted]"


def service_urls(services: dict[str, str]) -> dict[str, str]:
    """``hostcall_services`` checked: valid names, plain http(s) base URLs, no slash at the end."""
    checked: dict[str, str] = {}
    for name, url in services.items():
        if not fullmatch(SERVICE_PATTERN, name):
            raise ValueError(f"hostcall_services: {name!r} is not a valid service name")
        parts = urlsplit(url)
        try:
            httpx.URL(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except (httpx.InvalidURL, ValueError):
            raise ValueError(f"hostcall_services[{name!r}] is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"hostcall_services[{name!r}] must be an http(s) URL with a host")
        if parts.query or parts.fragment:
            raise ValueError(f"hostcall_services[{name!r}] must not have a query or fragment")
        checked[name] = url.rstrip("/")
    return checked


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Never store or send a cookie: one client serves every tenant."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


def _redact(data: bytes, token: str) -> bytes:
    """``data`` without the bearer token, nor its signature, if an upstream echoed them.

    An upstream that reflects request headers into its body would otherwise hand
    the guest a token it could return to its caller. The signature alone is
    what makes a token usable, so it is removed wherever it appears.
    """
    signature = token.rsplit(".", 1)[-1].encode()
    return data.replace(token.encode(), _REDACTED).replace(signature, _REDACTED)


class ServiceClient:
    """The configured services and the one client that POSTs to them."""

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None) -> None:
        self._urls = service_urls(settings.hostcall_services)
        self._max_response_bytes = settings.hostcall_max_response_bytes
        # A worker thread has at most one call in flight, so this many
        # connections never makes a call wait for the pool; the headroom
        # covers connections being closed while new ones open.
        connections = max(4, settings.executor_io_threads + settings.executor_threads)
        limits = httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=connections,
            keepalive_expiry=15.0,
        )
        self._client = httpx.Client(
            transport=transport or _deadline.DeadlineTransport(limits=limits),
            follow_redirects=False,
            trust_env=False,
            cookies=http.cookiejar.CookieJar(policy=_NoCookies()),
            timeout=settings.hostcall_timeout_ms / 1000.0,
            headers={
                "User-Agent": f"extensions-runtime/{__version__}",
                "Accept": "application/json",
                "Accept-Encoding": "identity",
            },
        )

    def configured(self, service: str) -> bool:
        return service in self._urls

    def url(self, service: str, method: str) -> str | None:
        """Where ``service/method`` is called; ``None`` for a service not configured."""
        base = self._urls.get(service)
        return None if base is None else f"{base}/{service}/{method}"

    def close(self) -> None:
        self._client.close()

    def post(
        self,
        target: str,
        url: str,
        body: bytes,
        headers: dict[str, str],
        timeout_s: float,
        *,
        token: str,
    ) -> bytes:
        """POST and answer the guest's success response ``{"status", "body"}``.

        Raises :class:`Refused` for an answer the guest may not have (HTTP 5xx,
        compressed, too large), and the transport's own exceptions
        (:data:`~app.hostcalls._errors.TRANSPORT_ERRORS`) for the bridge to map.
        """
        limit = self._max_response_bytes
        too_large = Refused(
            HostCallErrorKind.TOO_LARGE, f"response exceeds the limit of {limit} bytes"
        )
        with (
            _deadline.deadline(time.monotonic() + timeout_s),
            self._client.stream(
                "POST", url, content=body, headers=headers, timeout=httpx.Timeout(timeout_s)
            ) as response,
        ):
            status = response.status_code
            if status >= 500:
                raise Refused(HostCallErrorKind.UNAVAILABLE, f"{target} answered HTTP {status}")
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise Refused(
                    HostCallErrorKind.UNAVAILABLE, "service answered with a compressed body"
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise too_large
            data = bytearray()
            for chunk in response.iter_raw():
                data += chunk
                if len(data) > limit:
                    raise too_large
        answer = _redact(bytes(data), token)
        if len(answer) != len(data):
            _log.warning("hostcall.token_reflected", target=target)
        try:
            parsed: Any = strict_loads(answer) if answer else None
        except (ValueError, RecursionError):
            parsed = None
        return json.dumps({"status": status, "body": parsed}, separators=(",", ":")).encode()
