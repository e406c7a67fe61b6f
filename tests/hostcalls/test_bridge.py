"""The HTTP bridge: policy, deadlines, caps and scoped tokens, against respx and a real socket."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
import respx
from pydantic import SecretStr

from app.hostcalls import (
    HttpBridge,
    InvocationBridge,
    OutcomeCounter,
    parse_policy,
    verify_dev_token,
)
from app.invocation import ExecutionContext
from app.sandbox import HostBridge
from app.settings import Settings

SECRET = "host-call-test-secret-with-enough-bytes-0123"
BASE = "http://graph.test"
URL = f"{BASE}/graph/GetNode"
CONTEXT = ExecutionContext(
    tenant_id="t1", organization_id="o1", user_id="u1", request_id="req-1", caller="process"
)
POLICY = parse_policy("""
tiers:
  read:
    allow: ["*/Get*", "unknown/Get*"]
  pure:
    allow: []
""")
NODE = {"id": "n1", "name": "Node One"}
GET_NODE = {"service": "graph", "method": "GetNode", "body": {"id": "n1"}}


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "hostcall_services": {"graph": BASE, "search": "http://search.test/base/"},
        "dev": True,  # HS256 host-call tokens are a dev-only option
        "hostcall_token_secret": SecretStr(SECRET),
        "hostcall_timeout_ms": 2_000,
        "hostcall_max_request_bytes": 4096,
        "hostcall_max_response_bytes": 1024,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def settings() -> Settings:
    return _settings()


@pytest.fixture
def bridge(settings: Settings) -> Iterator[HttpBridge]:
    owner = HttpBridge(settings)
    yield owner
    owner.close()


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def _for(
    bridge: HttpBridge,
    tier: str = "read",
    requested: tuple[str, ...] = ("graph/GetNode", "search/GetDoc", "unknown/GetX"),
) -> InvocationBridge:
    return bridge.for_invocation(
        policy=POLICY, tier=tier, requested=requested, extension_id="enrich", version="1.0.0"
    )


def _call(
    bridge: HttpBridge | InvocationBridge,
    request: dict[str, Any] | bytes = GET_NODE,
    remaining_ms: float = 1_000,
    context: ExecutionContext = CONTEXT,
) -> Any:
    target = _for(bridge) if isinstance(bridge, HttpBridge) else bridge
    raw = request if isinstance(request, bytes) else json.dumps(request).encode()
    answer = target.call(raw, context, remaining_ms)
    return json.loads(answer if isinstance(answer, bytes) else answer.to_json())


def _error(answer: Any) -> str:
    assert set(answer) == {"error"}, answer
    assert set(answer["error"]) == {"kind", "message"}
    kind: str = answer["error"]["kind"]
    return kind


# ---- allowed calls -------------------------------------------------------------


def test_allowed_call_reaches_the_service(
    bridge: HttpBridge, settings: Settings, mock: respx.MockRouter
) -> None:
    route = mock.post(URL).respond(200, json=NODE)
    assert _call(bridge) == {"status": 200, "body": NODE}

    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == URL
    assert json.loads(request.content) == {"id": "n1"}
    headers = request.headers
    assert headers["content-type"] == "application/json"
    assert headers["connect-protocol-version"] == "1"
    assert headers["connect-timeout-ms"] == "1000"
    assert headers["x-request-id"] == "req-1"
    assert headers["accept-encoding"] == "identity"
    assert "cookie" not in headers
    scheme, token = headers["authorization"].split(" ")
    assert scheme == "Bearer"
    claims = verify_dev_token(
        token, secret=SECRET, audience="graph", issuer=settings.hostcall_token_issuer
    )
    assert (claims["tenant_id"], claims["organization_id"], claims["sub"]) == ("t1", "o1", "u1")
    assert (claims["extension_id"], claims["extension_version"]) == ("enrich", "1.0.0")
    assert claims["request_id"] == "req-1"
    assert bridge.counts.snapshot() == {("graph", "GetNode", "ok"): 1}


def test_base_url_path_is_kept(bridge: HttpBridge, mock: respx.MockRouter) -> None:
    route = mock.post("http://search.test/base/search/GetDoc").respond(200, json={"ok": True})
    request = {"service": "search", "method": "GetDoc", "body": {}}
    assert _call(bridge, request) == {"status": 200, "body": {"ok": True}}
    assert route.called
    token = route.calls.last.request.headers["authorization"].removeprefix("Bearer ")
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == "search"


def test_missing_body_sends_an_empty_message(bridge: HttpBridge, mock: respx.MockRouter) -> None:
    route = mock.post(URL).respond(200, json=NODE)
    _call(bridge, {"service": "graph", "method": "GetNode"})
    assert route.calls.last.request.content == b"{}"


@pytest.mark.parametrize(("remaining", "header"), [(250.7, "250"), (60_000, "2000")])
def test_timeout_is_the_smaller_of_remaining_and_setting(
    bridge: HttpBridge, mock: respx.MockRouter, remaining: float, header: str
) -> None:
    route = mock.post(URL).respond(200, json=NODE)
    _call(bridge, remaining_ms=remaining)
    assert route.calls.last.request.headers["connect-timeout-ms"] == header
    timeout = route.calls.last.request.extensions["timeout"]
    assert timeout["read"] == pytest.approx(int(header) / 1000, abs=0.001)


def test_odd_request_ids_are_not_forwarded(bridge: HttpBridge, mock: respx.MockRouter) -> None:
    route = mock.post(URL).respond(200, json=NODE)
    _call(bridge, context=ExecutionContext(tenant_id="t1", request_id="bad id\n"))
    assert "x-request-id" not in route.calls.last.request.headers


def test_client_errors_are_answers_for_the_guest(
    bridge: HttpBridge, mock: respx.MockRouter
) -> None:
    error = {"code": "not_found", "message": "no node n1"}
    mock.post(URL).respond(404, json=error)
    assert _call(bridge) == {"status": 404, "body": error}


@pytest.mark.parametrize("content", [b"", b"<html>oops</html>", b"NaN", b'{"a": 1'])
def test_a_body_that_is_not_json_is_null(
    bridge: HttpBridge, mock: respx.MockRouter, content: bytes
) -> None:
    mock.post(URL).respond(200, content=content)
    assert _call(bridge) == {"status": 200, "body": None}


def test_unicode_and_lone_surrogates_pass_through(
    bridge: HttpBridge, mock: respx.MockRouter
) -> None:
    route = mock.post(URL).respond(200, content=b'{"name": "N\\u00f6de \\ud800", "x": "\xc3\xa9"}')
    request = {"service": "graph", "method": "GetNode", "body": {"q": "caf\u00e9 \ud800"}}
    answer = _call(bridge, request)
    assert answer == {"status": 200, "body": {"name": "N\u00f6de \ud800", "x": "\u00e9"}}
    assert json.loads(route.calls.last.request.content) == {"q": "caf\u00e9 \ud800"}


def test_redirects_are_not_followed(bridge: HttpBridge, mock: respx.MockRouter) -> None:
    route = mock.post(URL).respond(307, headers={"location": "http://evil.test/steal"})
    elsewhere = mock.route(host="evil.test").respond(200)
    assert _call(bridge) == {"status": 307, "body": None}
    assert route.call_count == 1
    assert not elsewhere.called


def test_cookies_are_never_kept(bridge: HttpBridge, mock: respx.MockRouter) -> None:
    route = mock.post(URL).respond(200, json=NODE, headers={"set-cookie": "session=t1; Path=/"})
    _call(bridge)
    _call(bridge, context=ExecutionContext(tenant_id="t2", request_id="req-2"))
    assert "cookie" not in route.calls.last.request.headers


def test_satisfies_the_sandbox_protocol(bridge: HttpBridge) -> None:
    per_invocation: HostBridge = _for(bridge)
    assert callable(per_invocation.call)


# ---- denied: the upstream sees nothing -------------------------------------------


@pytest.mark.parametrize(
    ("tier", "requested", "guest_request"),
    [
        ("read", ("graph/GetNode",), {"service": "graph", "method": "DeleteNode", "body": {}}),
        ("read", ("graph/DeleteNode",), {"service": "graph", "method": "DeleteNode", "body": {}}),
        ("read", ("graph/GetEdge",), GET_NODE),  # tier allows it, the extension did not ask
        ("pure", ("graph/GetNode",), GET_NODE),
        ("no-such-tier", ("graph/GetNode",), GET_NODE),
        ("read", ("unknown/GetX",), {"service": "unknown", "method": "GetX", "body": {}}),
    ],
)
def test_denied_calls_never_leave_the_process(
    bridge: HttpBridge,
    mock: respx.MockRouter,
    tier: str,
    requested: tuple[str, ...],
    guest_request: dict[str, Any],
) -> None:
    anything = mock.route().respond(200)
    answer = _call(_for(bridge, tier, requested), guest_request)
    assert _error(answer) == "denied"
    assert not anything.called
    # A denied call is counted, but never under the name the guest chose.
    service = "graph" if guest_request["service"] == "graph" else "_other"
    assert bridge.counts.snapshot() == {(service, "_other", "denied"): 1}


def test_no_token_secret_means_unavailable_and_nothing_sent(mock: respx.MockRouter) -> None:
    anything = mock.route().respond(200)
    for secret in (None, SecretStr("")):
        owner = HttpBridge(_settings(hostcall_token_secret=secret))
        try:
            answer = _call(owner)
        finally:
            owner.close()
        assert _error(answer) == "unavailable"
        assert "configured" in answer["error"]["message"]
    assert not anything.called


# ---- malformed guest requests ----------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'"graph/GetNode"',
        b'{"service": "graph"}',
        b'{"method": "GetNode"}',
        b'{"service": 1, "method": "GetNode"}',
        b'{"service": "graph", "method": "GetNode", "body": [1]}',
        b'{"service": "graph", "method": "GetNode", "body": "x"}',
        b'{"service": "graph", "method": "GetNode", "body": {"x": NaN}}',
        b'{"service": "graph", "method": "GetNode", "body": {}, "url": "http://x"}',
        # Names that would walk the URL out of the service, even past a "*/Get*" allowlist.
        b'{"service": "graph", "method": "GetNode/../../admin/Drop", "body": {}}',
        b'{"service": "../admin", "method": "GetNode", "body": {}}',
        b'{"service": "graph?x=1", "method": "GetNode", "body": {}}',
        b'{"service": "", "method": "GetNode", "body": {}}',
        b'{"service": "graph", "method": "' + b"G" * 65 + b'", "body": {}}',
        # "$" in a Python regex also matches before a final newline: names are fullmatched.
        b'{"service": "graph", "method": "GetNode\\n", "body": {}}',
        b'{"service": "graph\\n", "method": "GetNode", "body": {}}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_malformed_requests_are_invalid(mock: respx.MockRouter, raw: bytes) -> None:
    owner = HttpBridge(_settings(hostcall_max_request_bytes=1_000_000))
    anything = mock.route().respond(200)
    try:
        assert _error(_call(owner, raw)) == "invalid_request"
    finally:
        owner.close()
    assert not anything.called
    assert owner.counts.snapshot() == {("-", "-", "invalid_request"): 1}


def test_an_oversized_request_is_too_large(bridge: HttpBridge, mock: respx.MockRouter) -> None:
    anything = mock.route().respond(200)
    request = {**GET_NODE, "body": {"pad": "x" * 5000}}
    answer = _call(bridge, request)
    assert _error(answer) == "too_large"
    assert "4096" in answer["error"]["message"]
    assert not anything.called


# ---- time --------------------------------------------------------------------------


@pytest.mark.parametrize("remaining", [0, -5, 0.5])
def test_no_time_left_is_a_timeout_without_a_request(
    bridge: HttpBridge, mock: respx.MockRouter, remaining: float
) -> None:
    anything = mock.route().respond(200)
    assert _error(_call(bridge, remaining_ms=remaining)) == "timeout"
    assert not anything.called


@pytest.mark.parametrize("exc", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.PoolTimeout])
def test_upstream_timeouts(
    bridge: HttpBridge, mock: respx.MockRouter, exc: type[httpx.TimeoutException]
) -> None:
    mock.post(URL).mock(side_effect=exc)
    answer = _call(bridge, remaining_ms=300)
    assert _error(answer) == "timeout"
    assert answer["error"]["message"] == "graph/GetNode did not answer within 300 ms"
    assert bridge.counts.snapshot() == {("graph", "GetNode", "timeout"): 1}


# ---- failures ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_unavailable(
    bridge: HttpBridge, mock: respx.MockRouter, status: int
) -> None:
    mock.post(URL).respond(status, json={"code": "internal", "message": "secret stack trace"})
    answer = _call(bridge)
    assert _error(answer) == "unavailable"
    assert str(status) in answer["error"]["message"]
    assert "secret" not in answer["error"]["message"]


@pytest.mark.parametrize("exc", [httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError])
def test_transport_errors_are_unavailable(
    bridge: HttpBridge, mock: respx.MockRouter, exc: type[httpx.TransportError]
) -> None:
    mock.post(URL).mock(side_effect=exc)
    answer = _call(bridge)
    assert _error(answer) == "unavailable"
    assert BASE not in json.dumps(answer), "the guest must not learn the service URL"


def test_a_response_declared_too_large_is_refused(
    bridge: HttpBridge, mock: respx.MockRouter
) -> None:
    mock.post(URL).respond(200, content=b"x" * 1025)
    assert _error(_call(bridge)) == "too_large"


def test_a_streamed_response_is_cut_at_the_limit(
    bridge: HttpBridge, mock: respx.MockRouter
) -> None:
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(1000):
            sent.append(1)
            yield b"y" * 100

    mock.post(URL).mock(return_value=httpx.Response(200, content=chunks()))
    assert _error(_call(bridge)) == "too_large"
    assert len(sent) < 20, "the bridge kept reading past its limit"


def test_a_response_at_the_limit_is_fine(bridge: HttpBridge, mock: respx.MockRouter) -> None:
    body = {"blob": "z" * (1024 - 11)}
    content = json.dumps(body, separators=(",", ":")).encode()
    assert len(content) == 1024
    mock.post(URL).respond(200, content=content)
    assert _call(bridge) == {"status": 200, "body": body}


def test_compressed_responses_are_refused(bridge: HttpBridge, mock: respx.MockRouter) -> None:
    mock.post(URL).respond(
        200, content=gzip.compress(b'{"id": "n1"}'), headers={"content-encoding": "gzip"}
    )
    assert _error(_call(bridge)) == "unavailable"


# ---- upstreams that reflect the token ------------------------------------------------------


def test_a_reflected_token_is_redacted_before_the_guest_sees_it(mock: respx.MockRouter) -> None:
    def reflect(request: httpx.Request) -> httpx.Response:
        bearer = request.headers["authorization"]
        signature = bearer.rsplit(".", 1)[-1]
        body = {"headers": dict(request.headers), "sig": signature, "nested": [bearer]}
        return httpx.Response(200, json=body, headers={"x-echo-authorization": bearer})

    route = mock.post(URL).mock(side_effect=reflect)
    bridge = HttpBridge(_settings(hostcall_max_response_bytes=64 * 1024))
    try:
        answer = _call(bridge)
    finally:
        bridge.close()
    token = route.calls.last.request.headers["authorization"].removeprefix("Bearer ")
    text = json.dumps(answer)
    assert token not in text
    assert token.rsplit(".", 1)[-1] not in text
    assert answer["status"] == 200
    assert answer["body"]["headers"]["authorization"] == "Bearer [redacted]"
    assert answer["body"]["sig"] == "[redacted]"
    assert answer["body"]["headers"]["x-request-id"] == "req-1"  # the rest is untouched
    assert set(answer) == {"status", "body"}  # no upstream headers at all


# ---- configuration and counters ----------------------------------------------------


@pytest.mark.parametrize(
    "services",
    [
        {"graph": "ftp://graph"},
        {"graph": "graph:8080"},
        {"graph": "http://graph/?q=1"},
        {"../graph": "http://graph"},
        {"graph\n": "http://graph"},
        {"graph": "http://graph:99999"},
    ],
)
def test_bad_service_urls_fail_at_start(services: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="hostcall_services"):
        HttpBridge(_settings(hostcall_services=services))


def test_made_up_names_cannot_spend_the_label_budget(
    bridge: HttpBridge, mock: respx.MockRouter
) -> None:
    mock.post(URL).respond(200, json=NODE)
    per_invocation = _for(bridge, requested=("*/Get*", "graph/*"))
    for i in range(600):
        assert _error(_call(per_invocation, {"service": f"zz{i}", "method": "GetNode"})) == "denied"
        assert _error(_call(per_invocation, {"service": "graph", "method": f"Drop{i}"})) == "denied"
    assert _call(per_invocation) == {"status": 200, "body": NODE}
    assert bridge.counts.snapshot() == {
        ("_other", "_other", "denied"): 600,
        ("graph", "_other", "denied"): 600,
        ("graph", "GetNode", "ok"): 1,
    }


@pytest.mark.parametrize(
    "error",
    [
        httpx.InvalidURL("Invalid port: '99999'"),  # not an httpx.HTTPError
        httpx.StreamConsumed(),
        ValueError("bad header value"),
    ],
)
def test_request_building_errors_are_a_typed_answer(error: Exception) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    owner = HttpBridge(_settings(), transport=httpx.MockTransport(fail))
    try:
        answer = _call(owner)
    finally:
        owner.close()
    assert _error(answer) == "unavailable"
    assert owner.counts.snapshot() == {("graph", "GetNode", "unavailable"): 1}


def test_an_unexpected_bridge_error_never_escapes_to_the_invocation() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug in the transport")

    owner = HttpBridge(_settings(), transport=httpx.MockTransport(fail))
    try:
        answer = _call(owner)
    finally:
        owner.close()
    assert _error(answer) == "unavailable"
    assert "bug" not in answer["error"]["message"]
    assert owner.counts.snapshot() == {("graph", "GetNode", "internal"): 1}


def test_counter_caps_its_series() -> None:
    counter = OutcomeCounter(max_series=2)
    for method in ("A", "B", "C", "D", "A"):
        counter.add("svc", method, "ok")
    assert counter.snapshot() == {
        ("svc", "A", "ok"): 2,
        ("svc", "B", "ok"): 1,
        ("_other", "_other", "ok"): 2,
    }


def test_counter_is_thread_safe() -> None:
    counter = OutcomeCounter()

    def work() -> None:
        for _ in range(2000):
            counter.add("graph", "GetNode", "ok")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.snapshot() == {("graph", "GetNode", "ok"): 16_000}


# ---- a real, slow upstream: the deadline holds over the whole call ------------------


@pytest.fixture
def dripping_server() -> Iterator[str]:
    """Answers with headers at once, then one body byte every 50 ms for ten seconds."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n")
                for _ in range(200):
                    if stop.wait(0.05):
                        break
                    try:
                        conn.sendall(b" ")
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_a_dripping_upstream_cannot_stretch_the_deadline(dripping_server: str) -> None:
    # A byte every 50 ms for 10 s, and a host-call timeout longer than that: only the
    # invocation's 300 ms left can end the call well before the drip does.
    owner = HttpBridge(
        _settings(hostcall_services={"graph": dripping_server}, hostcall_timeout_ms=30_000)
    )
    try:
        started = time.monotonic()
        answer = _call(owner, remaining_ms=300)
        elapsed = time.monotonic() - started
    finally:
        owner.close()
    assert _error(answer) == "timeout"
    assert 0.25 <= elapsed < 5.0, elapsed


def test_a_silent_upstream_times_out() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections (backlog) but never answers
    # The host-call timeout (30 s) would end it much later: the 200 ms left must.
    owner = HttpBridge(
        _settings(
            hostcall_services={"graph": f"http://127.0.0.1:{silent.getsockname()[1]}"},
            hostcall_timeout_ms=30_000,
        )
    )
    try:
        started = time.monotonic()
        answer = _call(owner, remaining_ms=200)
        elapsed = time.monotonic() - started
    finally:
        owner.close()
        silent.close()
    assert _error(answer) == "timeout"
    assert elapsed < 5.0, elapsed


def test_a_closed_port_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    owner = HttpBridge(_settings(hostcall_services={"graph": f"http://127.0.0.1:{port}"}))
    try:
        assert _error(_call(owner)) == "unavailable"
    finally:
        owner.close()
