"""Raw requests for the fuzz tests, and what an acceptable answer looks like.

gRPC needs HTTP/2 with trailers, and the fuzz needs to send envelopes no real
client would (truncated, lying about their length, flagged as compressed), so
gRPC goes through a minimal h2c client on the ``h2`` state machine. Connect and
gRPC-web are plain HTTP/1.1 through httpx.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions

# Connect's code -> HTTP status table (connectrpc ``_protocol._error_to_http_status``).
CONNECT_STATUS = {
    "canceled": 499,
    "unknown": 500,
    "invalid_argument": 400,
    "deadline_exceeded": 504,
    "not_found": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "resource_exhausted": 429,
    "failed_precondition": 400,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "data_loss": 500,
    "unauthenticated": 401,
}
# The unknown-method route answers 404 + unimplemented (see app/rpc/_unknown.py).
_EXTRA_CONNECT = {("unimplemented", 404)}
# Answers without a Connect body that the Connect protocol itself prescribes:
# unsupported media type, and GET on a method that is not side-effect free.
PROTOCOL_STATUSES = {405, 415}
# Codes that mean "the server did not know what happened": a bug, never an answer.
BUG_CODES = {"unknown", "internal"}
_GRPC_UNKNOWN, _GRPC_INTERNAL = 2, 13
# The one INTERNAL the gRPC spec prescribes for malformed input: a message whose
# compressed flag is set while no grpc-encoding was negotiated.
_GRPC_SPEC_INTERNAL = "protocol error: sent compressed message without compression support"
_LEAKS = ("Traceback", 'File "/', "site-packages", "/work/", '.py", line', "RuntimeError(")


def assert_no_leak(*parts: bytes | str) -> None:
    """No traceback, source path or exception repr anywhere in an answer."""
    for part in parts:
        text = part.decode("utf-8", "replace") if isinstance(part, bytes) else part
        for marker in _LEAKS:
            assert marker not in text, f"answer leaks {marker!r}: {text[:500]!r}"


def check_connect(status: int, content_type: str, body: bytes) -> str:
    """Validate a Connect unary answer; returns ``ok``, the error code or the status."""
    assert_no_leak(body)
    if status == 200:
        if content_type.startswith("application/json"):
            assert isinstance(json.loads(body), dict)
        return "ok"
    if status in PROTOCOL_STATUSES:
        return str(status)
    assert content_type.startswith("application/json"), (status, content_type, body[:300])
    error = json.loads(body)
    code = error.get("code")
    assert code in CONNECT_STATUS, error
    assert CONNECT_STATUS[code] == status or (code, status) in _EXTRA_CONNECT, (status, error)
    assert code not in BUG_CODES, f"the server answered {code}: {error}"
    assert isinstance(error.get("message", ""), str)
    return str(code)


def check_grpc(status: int, headers: dict[str, str], trailers: dict[str, str], body: bytes) -> str:
    """Validate a gRPC or gRPC-web answer; returns ``grpc-<code>`` or the HTTP status."""
    assert_no_leak(body, json.dumps(headers), json.dumps(trailers))
    if status in PROTOCOL_STATUSES:
        return str(status)
    assert status == 200, (status, headers, body[:300])
    raw_status = trailers.get("grpc-status", headers.get("grpc-status"))
    assert raw_status is not None, ("no grpc-status", headers, trailers)
    code = int(raw_status)
    assert 0 <= code <= 16, code
    message = urllib.parse.unquote(trailers.get("grpc-message", headers.get("grpc-message", "")))
    assert code != _GRPC_UNKNOWN, f"gRPC UNKNOWN: {message}"
    assert code != _GRPC_INTERNAL or message == _GRPC_SPEC_INTERNAL, f"gRPC INTERNAL: {message}"
    return f"grpc-{code}"


def grpc_web_trailers(body: bytes) -> tuple[bytes, dict[str, str]]:
    """Split a gRPC-web body into its messages and its trailer frame (flag 0x80)."""
    messages = bytearray()
    trailers: dict[str, str] = {}
    view = body
    while len(view) >= 5:
        flag, size = view[0], int.from_bytes(view[1:5], "big")
        frame, view = view[5 : 5 + size], view[5 + size :]
        if flag & 0x80:
            for line in frame.decode("latin-1").split("\r\n"):
                if ":" in line:
                    key, _, value = line.partition(":")
                    trailers[key.strip().lower()] = value.strip()
        else:
            messages += frame
    assert not view, f"trailing bytes after the last gRPC-web frame: {bytes(view)[:50]!r}"
    return bytes(messages), trailers


@dataclass
class H2Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    trailers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    reset: bool = False


def h2_post(
    host: str,
    port: int,
    path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    timeout: float = 10.0,
) -> H2Answer:
    """One POST over a fresh h2c (prior knowledge) connection; reads headers, data, trailers."""
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        stream = conn.get_next_available_stream_id()
        conn.send_headers(
            stream,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":authority", f"{host}:{port}"),
                (":path", path),
                *headers,
            ],
        )
        answer = H2Answer(status=0)
        data = bytearray()
        done = False

        def pump() -> None:
            nonlocal done
            chunk = sock.recv(65536)
            if not chunk:
                done = True
                return
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived):
                    answer.headers = dict(event.headers)  # type: ignore[arg-type]
                elif isinstance(event, h2.events.TrailersReceived):
                    answer.trailers = dict(event.headers)  # type: ignore[arg-type]
                elif isinstance(event, h2.events.DataReceived):
                    data.extend(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamReset):
                    answer.reset = True
                    done = True
                elif isinstance(event, h2.events.StreamEnded | h2.events.ConnectionTerminated):
                    done = True
            sock.sendall(conn.data_to_send())

        view = memoryview(body)
        while view and not done:
            size = min(
                len(view), conn.local_flow_control_window(stream), conn.max_outbound_frame_size
            )
            if size <= 0:
                pump()
                continue
            conn.send_data(stream, bytes(view[:size]))
            view = view[size:]
            sock.sendall(conn.data_to_send())
        if not done:
            try:
                conn.end_stream(stream)
                sock.sendall(conn.data_to_send())
            except h2.exceptions.StreamClosedError:
                done = True  # the server already answered and closed the stream
        while not done:
            assert time.monotonic() < deadline, "no complete gRPC answer before the deadline"
            pump()
        answer.status = int(answer.headers.get(":status", "0"))
        answer.body = bytes(data)
        return answer
