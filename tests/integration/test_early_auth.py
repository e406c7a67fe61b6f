"""Unauthenticated requests cost the event loop nothing: refused before the body is decoded.

And an authenticated 4 MB body is decoded and converted on a worker thread.

Before, a 3.9 MB JSON body of numbers with no token was parsed into a protobuf
``Value`` on the event loop (2.1 s) before the 401, and with two such senders
``/healthz`` answered in 2 s. The service here is the real CLI under pyvoy.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from connectrpc._gen.google.rpc.status_pb import Status
from protobuf import Oneof

from tests._clients import METHOD
from tests._servers import ROOT, cli_server
from tests._tokens import ISSUER, SECRET, caller_token


def _big_body(size: int = 4_000_000) -> bytes:
    """``{"extensionId": "echo", "inputJson": [0, 1, 2, ...]}`` of about ``size`` bytes."""
    head, tail = b'{"extensionId":"echo","inputJson":[', b"]}"
    numbers = bytearray()
    i = 0
    while len(numbers) < size - len(head) - len(tail) - 16:
        numbers += b"%d," % (i % 100_000)
        i += 1
    return head + bytes(numbers) + b"0" + tail


BIG = _big_body()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("early-auth")
    controls = Path(tmp) / "controls.yaml"
    controls.write_text("tenant_limits:\n  - {tenant_id: limited, rate_per_s: 0.01, burst: 1}\n")
    env = {
        "EXTENSIONS_RUNTIME_KILL_SWITCHES_FILE": str(controls),
        "EXTENSIONS_RUNTIME_AUTH_HS256_SECRET": SECRET,
        "EXTENSIONS_RUNTIME_AUTH_ISSUER": ISSUER,
        "EXTENSIONS_RUNTIME_EXTENSIONS_DIR": str(ROOT / "examples" / "extensions"),
        "EXTENSIONS_RUNTIME_MODULE_CACHE_DIR": str(Path(tmp) / "cache"),
        "EXTENSIONS_RUNTIME_CATALOG_POLL_INTERVAL_S": "0",
        "EXTENSIONS_RUNTIME_LOG_INVOCATIONS": "false",
    }
    with cli_server("pyvoy", env=env, dev=False, log_path=tmp / "server.log") as url:
        yield url


def _send_unauthenticated(client: httpx.Client, url: str) -> int:
    response = client.post(
        url + METHOD, content=BIG, headers={"content-type": "application/json"}, timeout=30
    )
    assert response.json()["code"] == "unauthenticated", response.text
    return response.status_code


def _send_authenticated(client: httpx.Client, url: str) -> int:
    """A valid caller's 4 MB body, decoded and converted (off the loop), for no extension."""
    token = caller_token("big-sender", iss=ISSUER)
    response = client.post(
        url + METHOD,
        content=BIG.replace(b'"echo"', b'"no-such-extension"'),
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert response.json()["code"] == "not_found", response.text
    return response.status_code


def test_a_4mb_body_without_a_token_is_refused(served: str) -> None:
    assert len(BIG) >= 3_900_000
    with httpx.Client() as client:
        assert _send_unauthenticated(client, served) == 401


def test_the_body_of_a_bad_token_is_never_decoded(served: str) -> None:
    """Garbage that would be invalid_argument if decoded is unauthenticated instead."""
    response = httpx.post(
        served + METHOD,
        content=b"[[[[{not json" * 1000,
        headers={"content-type": "application/json", "authorization": "Bearer nope"},
    )
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


@pytest.mark.parametrize(
    ("send", "status", "bound_s"),
    # What the behaviour needs: decoded on the loop, each body held it ~2 s, and so did
    # /healthz. Bounds well under that hold on a machine busy with other work too; the
    # idle-machine latency (the issue's 50 ms) is a measurement, not a pass/fail gate.
    # An accepted body's decode still competes for the GIL from its worker thread.
    [(_send_unauthenticated, 401, 0.5), (_send_authenticated, 404, 1.0)],
    ids=["unauthenticated", "authenticated"],
)
def test_healthz_stays_fast_while_two_senders_push_4mb_bodies(
    served: str, send: Callable[[httpx.Client, str], int], status: int, bound_s: float
) -> None:
    stop = threading.Event()
    answers: Counter[object] = Counter()
    lock = threading.Lock()

    def sender() -> None:
        with httpx.Client() as client:
            while not stop.is_set():
                try:
                    answer: object = send(client, served)
                except httpx.TransportError as exc:  # the server may close before reading all
                    answer = type(exc).__name__
                with lock:
                    answers[answer] += 1

    senders = [threading.Thread(target=sender, daemon=True) for _ in range(2)]
    for thread in senders:
        thread.start()
    samples: list[float] = []
    try:
        with httpx.Client(base_url=served) as client:
            time.sleep(0.5)  # both senders are busy
            give_up = time.monotonic() + 90
            # Enough samples, and covering several whole requests of each sender.
            while len(samples) < 200 or sum(answers.values()) < 6:
                assert time.monotonic() < give_up, f"the senders were too slow: {answers}"
                started = time.perf_counter()
                assert client.get("/healthz").status_code == 200
                samples.append(time.perf_counter() - started)
                time.sleep(0.01)
    finally:
        stop.set()
        for thread in senders:
            thread.join(timeout=30)
    samples.sort()
    p95 = samples[int(len(samples) * 0.95)]
    assert answers[status] >= 2, answers  # the senders really were sending, and were answered
    assert set(answers) <= {status, "RemoteProtocolError", "WriteError", "ReadError"}, answers
    assert answers[status] >= sum(answers.values()) // 2, answers
    assert p95 < bound_s, f"/healthz p95 {p95 * 1000:.1f} ms with two 4 MB senders ({answers})"


def test_an_authenticated_call_still_works(served: str) -> None:
    token = caller_token("t1", iss=ISSUER)
    response = httpx.post(
        served + METHOD,
        json={"extensionId": "echo", "inputJson": {"a": 1}},
        headers={"authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["outputJson"] == {"a": 1}


def _grpc(url: str, token: str | None) -> tuple[grpc.StatusCode, dict[str, str], bytes]:
    """One gRPC call; its status, text metadata and the status details."""
    request = runtime_pb.InvokeExtensionRequest(
        extension_id="echo", input=Oneof("input_bytes", b"{}")
    )
    metadata = [("authorization", f"Bearer {token}")] if token else []
    with grpc.insecure_channel(url.removeprefix("http://")) as channel:
        call = channel.unary_unary(
            METHOD,
            request_serializer=lambda m: m.to_binary(),
            response_deserializer=runtime_pb.InvokeExtensionResponse.from_binary,
        )
        try:
            call(request, timeout=30, metadata=metadata)
        except grpc.RpcError as error:
            # Response headers (retry-after) come with the initial metadata.
            metadata = [*error.initial_metadata(), *error.trailing_metadata()]
            trailers = {k: v for k, v in metadata if isinstance(v, str)}
            details = next(
                (v for k, v in error.trailing_metadata() if k == "grpc-status-details-bin"), b""
            )
            return error.code(), trailers, bytes(details)  # type: ignore[arg-type]
        return grpc.StatusCode.OK, {}, b""


def test_grpc_callers_are_refused_before_decoding_and_rate_limited_with_a_hint(
    served: str,
) -> None:
    code, _, _ = _grpc(served, None)
    assert code is grpc.StatusCode.UNAUTHENTICATED
    token = caller_token("limited", iss=ISSUER)
    assert _grpc(served, token)[0] is grpc.StatusCode.OK  # the burst of one
    code, trailers, details = _grpc(served, token)
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert int(trailers["retry-after"]) >= 1
    status = Status.from_binary(details)
    (detail,) = status.details
    error = runtime_pb.InvocationError.from_binary(detail.value)
    assert error.kind == runtime_pb.ErrorKind.OVERLOADED
    assert error.retry_after_ms > 0
