"""ameide.host_log / ameide.host_call, and failure reasons that stay with their invocation."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable

import pytest

from app.errors import ErrorKind, InvocationFailure
from app.invocation import ExecutionContext, LogLevel
from app.sandbox import Abi
from tests.sandbox import _modules
from tests.sandbox.conftest import CONTEXT, Runner

Fails = Callable[..., InvocationFailure]


class EchoBridge:
    """Answers every request with ``re:`` + the request, recording what it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[bytes, ExecutionContext, float]] = []

    def call(self, request: bytes, context: ExecutionContext, remaining_ms: float) -> bytes:
        self.seen.append((request, context, remaining_ms))
        return b"re:" + request


class RaisingBridge:
    def __init__(self, failure: Exception) -> None:
        self.failure = failure

    def call(self, request: bytes, context: ExecutionContext, remaining_ms: float) -> bytes:
        raise self.failure


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (1, LogLevel.DEBUG),
        (2, LogLevel.INFO),
        (3, LogLevel.WARN),
        (4, LogLevel.ERROR),
        (0, LogLevel.INFO),
        (99, LogLevel.INFO),
    ],
)
def test_host_log_levels(invoke: Runner, level: int, expected: LogLevel) -> None:
    outcome = invoke(_modules.LOGGER, bytes([level]))
    assert [(line.level, line.message) for line in outcome.logs] == [(expected, "hello")]
    assert not outcome.logs_truncated


def test_host_call_without_bridge_is_denied_to_the_guest(invoke: Runner) -> None:
    outcome = invoke(_modules.HOST_CALL, b'{"service":"x"}')
    response = json.loads(outcome.output)
    assert response["error"]["kind"] == "denied"
    assert outcome.metrics.host_calls == 1


def test_host_call_through_bridge(invoke: Runner) -> None:
    bridge = EchoBridge()
    outcome = invoke(_modules.HOST_CALL, b"ping", host_bridge=bridge, timeout_ms=1000)
    assert outcome.output == b"re:ping"
    (request, context, remaining_ms), *_ = bridge.seen
    assert (request, context) == (b"ping", CONTEXT)
    assert 0 < remaining_ms <= 1000
    assert outcome.metrics.host_calls == 1


def test_host_call_budget(invoke: Runner) -> None:
    outcome = invoke(_modules.HOST_CALL_TWICE, b"ping", host_bridge=EchoBridge(), max_host_calls=1)
    assert json.loads(outcome.output)["error"]["kind"] == "budget_exhausted"
    assert outcome.metrics.host_calls == 2


def test_bridge_denial_reaches_the_guest(invoke: Runner) -> None:
    denial = InvocationFailure(ErrorKind.HOST_CALL_DENIED, "billing/charge is not allowed")
    outcome = invoke(_modules.HOST_CALL, b"ping", host_bridge=RaisingBridge(denial))
    assert json.loads(outcome.output)["error"] == {
        "kind": "denied",
        "message": "billing/charge is not allowed",
    }


def test_bridge_failure_ends_the_invocation(fails: Fails) -> None:
    failure = InvocationFailure(ErrorKind.HOST_CALL_FAILED, "orders service answered 503")
    got = fails(
        _modules.HOST_CALL, ErrorKind.HOST_CALL_FAILED, b"x", host_bridge=RaisingBridge(failure)
    )
    assert got.message == "orders service answered 503"
    assert got.metrics is not None and got.metrics.host_calls == 1


def test_bridge_bug_is_internal_without_details(fails: Fails) -> None:
    got = fails(
        _modules.HOST_CALL, ErrorKind.INTERNAL, b"x", host_bridge=RaisingBridge(KeyError("secret"))
    )
    assert "secret" not in got.message


def test_failure_reasons_stay_with_their_invocation(invoke: Runner) -> None:
    """wasmtime-py keeps the last host exception process-wide; ours must not cross threads."""
    failing = RaisingBridge(InvocationFailure(ErrorKind.HOST_CALL_FAILED, "boom"))
    cases: dict[str, tuple[bytes, dict[str, object], ErrorKind | None]] = {
        "host": (_modules.HOST_CALL, {"host_bridge": failing}, ErrorKind.HOST_CALL_FAILED),
        "fuel": (_modules.INFINITE_LOOP, {"fuel": 200_000}, ErrorKind.FUEL_EXHAUSTED),
        "trap": (_modules.UNREACHABLE, {}, ErrorKind.TRAP),
        "ok": (_modules.ECHO, {}, None),
    }
    results: Counter[tuple[str, str]] = Counter()
    barrier = threading.Barrier(len(cases))

    def worker(name: str) -> None:
        wasm, kwargs, _ = cases[name]
        barrier.wait()
        for _ in range(150):
            try:
                invoke(wasm, b"x", **kwargs)
                results[(name, "ok")] += 1
            except InvocationFailure as failure:
                results[(name, failure.kind.value)] += 1

    threads = [threading.Thread(target=worker, args=(name,)) for name in cases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = Counter(
        {(n, (kind.value if kind else "ok")): 150 for n, (_, _, kind) in cases.items()}
    )
    assert results == expected


def test_a_raw_guest_reads_its_config(invoke: Runner) -> None:
    config = b'{"rate":0.2,"id":9007199254740993}'
    assert invoke(_modules.CONFIG_RAW, config_json=config).output == config
    assert invoke(_modules.CONFIG_RAW).output == b"{}"  # no config: an empty object


def test_a_wasi_guest_reads_its_config_from_the_environment(invoke: Runner) -> None:
    config = b'{"greeting":"Hej"}'
    outcome = invoke(_modules.CONFIG_ENV, abi=Abi.WASI_STDIO, config_json=config)
    assert outcome.output == b"AMEIDE_CONFIG=" + config + b"\0"  # and nothing else
    assert invoke(_modules.CONFIG_ENV, abi=Abi.WASI_STDIO).output == b""  # empty otherwise
