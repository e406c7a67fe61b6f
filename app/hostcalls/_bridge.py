"""The host-call bridge: a guest's ``host_call`` becomes one Connect call to a platform service.

One :class:`HttpBridge` lives as long as the :class:`~app.runtime.Runtime` and
owns the shared HTTP client (:mod:`app.hostcalls._http`). Per invocation,
:meth:`HttpBridge.for_invocation` hands the sandbox a small object bound to
that invocation's policy snapshot, tier, requested calls, extension and
version; its ``call`` runs on the worker thread that runs the guest, in layers:

1. parse the guest's request ``{"service": str, "method": str, "body": {...}}``
   (at most ``hostcall_max_request_bytes``; anything else is ``invalid_request``;
   :mod:`app.hostcalls._request`);
2. policy: ``service/method`` must be in the tier's allowlist and the
   definition's requested calls, and the service must be configured, or the
   answer is ``denied`` and nothing leaves the process;
3. mint a token scoped to the invocation with the service as audience
   (:mod:`app.hostcalls._tokens`; no signing key configured: ``unavailable``);
4. POST Connect unary JSON to ``{base_url}/{service}/{method}`` within
   ``min(time left in the invocation, hostcall_timeout_ms)``, reading at most
   ``hostcall_max_response_bytes`` (:mod:`app.hostcalls._http`);
5. answer ``{"status": <http status>, "body": <JSON or null>}``, or
   ``{"error": {"kind": ..., "message": ...}}`` with kind ``denied``,
   ``timeout``, ``unavailable`` (connection failures, HTTP 5xx),
   ``too_large`` or ``invalid_request`` (:mod:`app.hostcalls._errors`). The
   guest never sees the token, the URL or any header. (``budget_exhausted``
   is reserved for the call budget, which the sandbox enforces before a call
   reaches the bridge.) No exception leaves the bridge: one it did not expect
   is ``unavailable`` for the guest and outcome ``internal`` in the metrics.
"""

from __future__ import annotations

import time

import httpx
from opentelemetry import propagate, trace

from app._ids import REQUEST_ID_PATTERN, fullmatch
from app.errors import HostCallErrorKind, HostCallRefusal
from app.hostcalls._counts import INTERNAL, OK, OTHER, OutcomeCounter
from app.hostcalls._errors import TRANSPORT_ERRORS, Refused, transport_refusal
from app.hostcalls._http import ServiceClient
from app.hostcalls._policy import Policy
from app.hostcalls._request import GuestRequest, parse_request
from app.hostcalls._tokens import HostCallSigner, TokenUnavailable
from app.invocation import ExecutionContext
from app.settings import Settings
from app.telemetry import get_logger, tracer

__all__ = ["HttpBridge", "InvocationBridge"]

_log = get_logger("app.hostcalls")


class HttpBridge:
    """Answers guests' host calls over one shared HTTP client; one per runtime."""

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.http = ServiceClient(settings, transport=transport)
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
        self.http.close()


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

    def call(
        self, request: bytes, context: ExecutionContext, remaining_ms: float
    ) -> bytes | HostCallRefusal:
        """Perform one guest host call: the answer's bytes, or a refusal the guest reads."""
        with tracer().start_as_current_span("host_call") as span:
            answer, outcome = self._call(request, context, remaining_ms)
            span.set_attribute("ameide.host_call.outcome", str(outcome))
            return answer

    def _call(
        self, request: bytes, context: ExecutionContext, remaining_ms: float
    ) -> tuple[bytes | HostCallRefusal, str]:
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
        except Refused as refused:
            outcome = refused.kind.value
            return HostCallRefusal(refused.kind, refused.message), outcome
        except Exception:  # noqa: BLE001 - a bug here must not end the guest's invocation
            _log.exception("hostcall.unexpected_error", extension=self._extension_id)
            kind = HostCallErrorKind.UNAVAILABLE
            return HostCallRefusal(kind, "the host call failed inside the runtime"), outcome
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
        if not self._owner.http.configured(request.service):
            return OTHER, OTHER
        allowed = self._policy.allows(self._tier, self._requested, request.service, request.method)
        return request.service, request.method if allowed else OTHER

    def _perform(
        self, request: GuestRequest, context: ExecutionContext, remaining_ms: float
    ) -> bytes:
        url = self._authorize(request)
        timeout_ms = min(remaining_ms, float(self._owner.settings.hostcall_timeout_ms))
        if timeout_ms < 1:
            raise Refused(HostCallErrorKind.TIMEOUT, "no time left for a host call")
        token = self._mint(request, context)
        headers = _headers(token, timeout_ms, context)
        try:
            return self._owner.http.post(
                request.target, url, request.body, headers, timeout_ms / 1000.0, token=token
            )
        except TRANSPORT_ERRORS as exc:
            raise transport_refusal(exc, request.target, request.service, timeout_ms) from None

    def _authorize(self, request: GuestRequest) -> str:
        """The policy check: the URL to call, or ``denied`` before anything leaves."""
        if not self._policy.allows(self._tier, self._requested, request.service, request.method):
            raise Refused(
                HostCallErrorKind.DENIED,
                f"{request.target} is not allowed: it must be requested by the extension"
                f" and allowed by its risk tier {self._tier!r}",
            )
        url = self._owner.http.url(request.service, request.method)
        if url is None:
            raise Refused(HostCallErrorKind.DENIED, f"no service {request.service!r} is available")
        return url

    def _mint(self, request: GuestRequest, context: ExecutionContext) -> str:
        """A token for this one call, its audience the service."""
        try:
            return self._owner.signer.mint(
                context=context,
                extension_id=self._extension_id,
                version=self._version,
                audience=request.service,
            )
        except TokenUnavailable:
            raise Refused(
                HostCallErrorKind.UNAVAILABLE, "host calls are not configured in this runtime"
            ) from None


def _headers(token: str, timeout_ms: float, context: ExecutionContext) -> dict[str, str]:
    """A Connect unary JSON request's headers, the token and the invocation's trace."""
    headers = {
        "Content-Type": "application/json",
        "Connect-Protocol-Version": "1",
        "Connect-Timeout-Ms": str(int(timeout_ms)),
        "Authorization": f"Bearer {token}",
    }
    if fullmatch(REQUEST_ID_PATTERN, context.request_id):
        headers["X-Request-Id"] = context.request_id
    propagate.inject(headers)  # traceparent: the upstream joins the invocation's trace
    return headers
