"""The host-call bridge: a guest's ``host_call`` becomes one Connect call to a platform service.

One :class:`HttpBridge` lives as long as the :class:`~app.runtime.Runtime` and
owns one shared, synchronous ``httpx.Client``. Per invocation,
:meth:`HttpBridge.for_invocation` hands the sandbox a small object bound to
that invocation's policy snapshot, tier, requested calls, extension and
version; its ``call`` runs on the worker thread that runs the guest:

1. parse the guest's request ``{"service": str, "method": str, "body": {...}}``
   (at most ``hostcall_max_request_bytes``; anything else is ``invalid_request``);
2. policy: ``service/method`` must be in the tier's allowlist and the
   definition's requested calls, and the service must be configured, or the
   answer is ``denied`` and nothing leaves the process;
3. mint a token scoped to the invocation with the service as audience
   (:mod:`app.hostcalls._tokens`; no signing key configured: ``unavailable``);
4. POST Connect unary JSON to ``{base_url}/{service}/{method}`` within
   ``min(time left in the invocation, hostcall_timeout_ms)``, reading at most
   ``hostcall_max_response_bytes``;
5. answer ``{"status": <http status>, "body": <JSON or null>}``, or
   ``{"error": {"kind": ..., "message": ...}}`` with kind ``denied``,
   ``timeout``, ``unavailable`` (connection failures, HTTP 5xx),
   ``too_large`` or ``invalid_request``. The guest never sees the token, the
   URL or any header: upstream headers are not passed on, and a body that
   reflects the token verbatim has it (and its signature) redacted.
   (``budget_exhausted`` is reserved for the call budget, which the sandbox
   enforces before a call reaches the bridge.) No exception leaves the
   bridge: one it did not expect is ``unavailable`` for the guest and outcome
   ``internal`` in the metrics.

Why a synchronous client on the worker thread rather than the event loop's
async client: the worker is already a blocking thread, parked inside a wasm
call, so a blocking request there costs nothing extra. Hopping to the loop
(``run_coroutine_threadsafe``) would add two thread switches per call, put
host-call traffic on the loop that serves every other request, and still
leave the worker blocked waiting for it. The loop stays free and the
executor's bound on threads is also the bound on concurrent host calls, which
is what sizes the connection pool.

Why the bridge bounds its own time: wasmtime's epoch interruption cannot stop
a host function, so a host call that hangs would hold the guest (and its
worker) past the invocation's deadline. Every call therefore gets a timeout of
at most the invocation's remaining time, and the transport
(:mod:`app.hostcalls._deadline`) clamps every socket operation to that
deadline, so a slow or dripping upstream cannot stretch it either.

Other choices: no redirects (a redirect would carry the scoped token to
wherever the upstream points), no environment proxies or netrc, no cookies
kept between calls (they would cross tenants), no compression (an upstream
cannot make the bridge inflate a small response past the cap), no retries (a
call may not be idempotent; the guest decides).
"""

from __future__ import annotations

import http.cookiejar
import json
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from opentelemetry import propagate, trace

from app._ids import METHOD_PATTERN, REQUEST_ID_PATTERN, SERVICE_PATTERN, fullmatch
from app.errors import HostCallErrorKind, host_call_error
from app.hostcalls import _deadline
from app.hostcalls._policy import Policy
from app.hostcalls._tokens import HostCallSigner, TokenUnavailable
from app.invocation import ExecutionContext
from app.settings import Settings
from app.telemetry import get_logger, tracer

_log = get_logger("app.hostcalls")

_REQUEST_KEYS = frozenset({"service", "method", "body"})
OK = "ok"
"""Outcome label of a call that reached the service and got an answer below 500."""
INTERNAL = "internal"
"""Outcome label of a call that failed inside the runtime (a bug)."""
OTHER = "_other"
"""Metric label of a service or method the configuration does not name."""


class _Refused(Exception):
    def __init__(self, kind: HostCallErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class GuestRequest:
    """A guest's host-call request, validated."""

    service: str
    method: str
    body: bytes
    """The request message, re-serialized as compact JSON."""

    @property
    def target(self) -> str:
        return f"{self.service}/{self.method}"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_request(raw: bytes, max_bytes: int) -> GuestRequest:
    """Validate a guest's request; raises ``_Refused`` (``too_large``/``invalid_request``)."""
    if len(raw) > max_bytes:
        raise _Refused(
            HostCallErrorKind.TOO_LARGE,
            f"request of {len(raw)} bytes exceeds the limit of {max_bytes} bytes",
        )
    invalid = HostCallErrorKind.INVALID_REQUEST
    try:
        document = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise _Refused(invalid, "request is not valid UTF-8 JSON") from None
    if not isinstance(document, dict):
        raise _Refused(invalid, 'request must be an object {"service", "method", "body"}')
    unknown = set(document) - _REQUEST_KEYS
    if unknown:
        raise _Refused(invalid, f"unknown request field(s): {', '.join(sorted(unknown))[:200]}")
    service, method = document.get("service"), document.get("method")
    if not isinstance(service, str) or not fullmatch(SERVICE_PATTERN, service):
        raise _Refused(invalid, "service must be a name like 'graph' ([A-Za-z0-9._-], 1-64)")
    if not isinstance(method, str) or not fullmatch(METHOD_PATTERN, method):
        raise _Refused(invalid, "method must be a name like 'GetNode' ([A-Za-z0-9_], 1-64)")
    body = document.get("body", {})
    if not isinstance(body, dict):
        raise _Refused(invalid, "body must be a JSON object (the request message)")
    # ASCII with \u escapes: a lone surrogate in a string stays encodable.
    encoded = json.dumps(body, separators=(",", ":")).encode()
    return GuestRequest(service=service, method=method, body=encoded)


class OutcomeCounter:
    """Thread-safe counts of host calls by (service, method, outcome), for metrics.

    The bridge only passes labels the configuration names (see
    :meth:`InvocationBridge.labels`); the cap on distinct pairs is a backstop
    for wildcard allowlists, and calls beyond it are counted under
    ``("_other", "_other")``.
    """

    def __init__(self, max_series: int = 512) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = {}
        self._pairs: set[tuple[str, str]] = set()
        self._max_series = max_series

    def add(self, service: str, method: str, outcome: str) -> None:
        with self._lock:
            pair = (service, method)
            if pair not in self._pairs:
                if len(self._pairs) >= self._max_series:
                    service, method = OTHER, OTHER
                else:
                    self._pairs.add(pair)
            key = (service, method, outcome)
            self._counts[key] = self._counts.get(key, 0) + 1

    def snapshot(self) -> dict[tuple[str, str, str], int]:
        with self._lock:
            return dict(self._counts)


_REDACTED = b"[redacted]"


def _redact(data: bytes, token: str) -> bytes:
    """``data`` without the bearer token, nor its signature, if an upstream echoed them.

    An upstream that reflects request headers into its body would otherwise hand
    the guest a token it could return to its caller. The signature alone is
    what makes a token usable, so it is removed wherever it appears.
    """
    signature = token.rsplit(".", 1)[-1].encode()
    return data.replace(token.encode(), _REDACTED).replace(signature, _REDACTED)


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Never store or send a cookie: one client serves every tenant."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


def _base_urls(services: dict[str, str]) -> dict[str, str]:
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


class HttpBridge:
    """Answers guests' host calls over one shared HTTP client; one per runtime."""

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self._services = _base_urls(settings.hostcall_services)
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
                "User-Agent": "extensions-runtime",
                "Accept": "application/json",
                "Accept-Encoding": "identity",
            },
        )
        self.counts = OutcomeCounter()
        self.signer = HostCallSigner(settings)

    def for_invocation(
        self,
        *,
        policy: Policy,
        tier: str,
        requested: tuple[str, ...],
        extension_id: str,
        version: str,
    ) -> InvocationBridge:
        """The bridge for one invocation, bound to this policy snapshot."""
        return InvocationBridge(
            self,
            policy=policy,
            tier=tier,
            requested=requested,
            extension_id=extension_id,
            version=version,
        )

    def close(self) -> None:
        self._client.close()

    def _post(
        self,
        target: str,
        url: str,
        body: bytes,
        headers: dict[str, str],
        timeout_s: float,
        *,
        token: str,
    ) -> bytes:
        """POST and answer the guest's success response; raises ``_Refused``."""
        limit = self.settings.hostcall_max_response_bytes
        too_large = _Refused(
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
                raise _Refused(HostCallErrorKind.UNAVAILABLE, f"{target} answered HTTP {status}")
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise _Refused(
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
            parsed: Any = json.loads(answer, parse_constant=_reject_constant) if answer else None
        except (ValueError, RecursionError):
            parsed = None
        return json.dumps({"status": status, "body": parsed}, separators=(",", ":")).encode()


class InvocationBridge:
    """One invocation's view of the bridge (a :class:`~app.sandbox.HostBridge`)."""

    __slots__ = ("_extension_id", "_owner", "_policy", "_requested", "_tier", "_version")

    def __init__(
        self,
        owner: HttpBridge,
        *,
        policy: Policy,
        tier: str,
        requested: tuple[str, ...],
        extension_id: str,
        version: str,
    ) -> None:
        self._owner = owner
        self._policy = policy
        self._tier = tier
        self._requested = requested
        self._extension_id = extension_id
        self._version = version

    def call(self, request: bytes, context: ExecutionContext, remaining_ms: float) -> bytes:
        """Perform one guest host call; always answers bytes for the guest."""
        with tracer().start_as_current_span("host_call") as span:
            answer, outcome = self._call(request, context, remaining_ms)
            span.set_attribute("ameide.host_call.outcome", str(outcome))
            return answer

    def _call(
        self, request: bytes, context: ExecutionContext, remaining_ms: float
    ) -> tuple[bytes, str]:
        started = time.monotonic()
        service, method, outcome = "-", "-", INTERNAL
        parsed: GuestRequest | None = None
        try:
            parsed = parse_request(request, self._owner.settings.hostcall_max_request_bytes)
            service, method = self.labels(parsed)
            trace.get_current_span().set_attribute("ameide.host_call.target", parsed.target)
            answer = self._perform(parsed, context, remaining_ms)
            outcome = OK
            return answer, outcome
        except _Refused as refused:
            outcome = refused.kind.value
            return host_call_error(refused.kind, refused.message), outcome
        except Exception:  # noqa: BLE001 - a bug here must not end the guest's invocation
            _log.exception("hostcall.unexpected_error", extension=self._extension_id)
            kind = HostCallErrorKind.UNAVAILABLE
            return host_call_error(kind, "the host call failed inside the runtime"), outcome
        finally:
            self._owner.counts.add(service, method, outcome)
            log = _log.info if outcome in (OK, HostCallErrorKind.DENIED) else _log.warning
            log(
                "hostcall.done",
                service=parsed.service if parsed else "-",
                method=parsed.method if parsed else "-",
                outcome=outcome,
                tier=self._tier,
                extension=self._extension_id,
                version=self._version,
                duration_ms=round((time.monotonic() - started) * 1000, 2),
            )

    def labels(self, request: GuestRequest) -> tuple[str, str]:
        """The metric labels of a call: only names the configuration gives.

        Guests choose what they ask for, so a label is the asked-for name only
        when the service is configured and (for the method) the call passes the
        policy; everything else is ``_other``. Denied calls to made-up
        services therefore cannot spend the series budget that real pairs need.
        """
        if request.service not in self._owner._services:
            return OTHER, OTHER
        allowed = self._policy.allows(self._tier, self._requested, request.service, request.method)
        return request.service, request.method if allowed else OTHER

    def _perform(
        self, request: GuestRequest, context: ExecutionContext, remaining_ms: float
    ) -> bytes:
        owner, target = self._owner, request.target
        if not self._policy.allows(self._tier, self._requested, request.service, request.method):
            raise _Refused(
                HostCallErrorKind.DENIED,
                f"{target} is not allowed: it must be requested by the extension"
                f" and allowed by its risk tier {self._tier!r}",
            )
        base_url = owner._services.get(request.service)
        if base_url is None:
            raise _Refused(HostCallErrorKind.DENIED, f"no service {request.service!r} is available")
        timeout_ms = min(remaining_ms, float(owner.settings.hostcall_timeout_ms))
        if timeout_ms < 1:
            raise _Refused(HostCallErrorKind.TIMEOUT, "no time left for a host call")
        try:
            token = owner.signer.mint(
                context=context,
                extension_id=self._extension_id,
                version=self._version,
                audience=request.service,
            )
        except TokenUnavailable:
            raise _Refused(
                HostCallErrorKind.UNAVAILABLE, "host calls are not configured in this runtime"
            ) from None
        headers = {
            "Content-Type": "application/json",
            "Connect-Protocol-Version": "1",
            "Connect-Timeout-Ms": str(int(timeout_ms)),
            "Authorization": f"Bearer {token}",
        }
        if fullmatch(REQUEST_ID_PATTERN, context.request_id):
            headers["X-Request-Id"] = context.request_id
        propagate.inject(headers)  # traceparent: the upstream joins the invocation's trace
        url = f"{base_url}/{request.service}/{request.method}"
        try:
            return owner._post(target, url, request.body, headers, timeout_ms / 1000.0, token=token)
        except httpx.TimeoutException:
            raise _Refused(
                HostCallErrorKind.TIMEOUT, f"{target} did not answer within {int(timeout_ms)} ms"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, ValueError) as exc:
            # InvalidURL, StreamError and a ValueError from building the request are
            # not HTTPErrors; they are still this call failing, not the invocation.
            _log.warning(
                "hostcall.transport_error", service=request.service, error=type(exc).__name__
            )
            raise _Refused(HostCallErrorKind.UNAVAILABLE, f"{target} is unreachable") from None
