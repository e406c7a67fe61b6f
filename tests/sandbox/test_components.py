"""The ``component`` ABI: typed results, the same limits and kinds as the core ABIs,
and a locked-down WASI preview 2 attacked from inside a real Python component."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from app.errors import ErrorKind, HostCallErrorKind, HostCallRefusal, InvocationFailure
from app.invocation import ExecutionContext, Outcome
from app.sandbox import Abi, SandboxEngine, default_abi
from tests.sandbox import _components, _modules
from tests.sandbox.conftest import Runner

ROOT = Path(__file__).resolve().parents[2]
PROBE_SOURCE = Path(__file__).parent / "guests" / "probe"
Fails = Callable[..., InvocationFailure]


def _run(invoke: Runner, wasm: bytes, request: object = b"", **overrides: object) -> Outcome:
    data = request if isinstance(request, bytes) else json.dumps(request).encode()
    return invoke(wasm, data, abi=Abi.COMPONENT, **overrides)


def _fails(
    invoke: Runner, wasm: bytes, request: object, kind: ErrorKind, **kw: object
) -> InvocationFailure:
    with pytest.raises(InvocationFailure) as caught:
        _run(invoke, wasm, request, **kw)
    assert caught.value.kind is kind, caught.value.message
    return caught.value


# -- the ABI, with small components in WAT -----------------------------------------


def test_a_component_answers_through_its_typed_handle(invoke: Runner) -> None:
    outcome = _run(invoke, _components.ECHO, b'{"id": 9007199254740993}')
    assert outcome.output == b'{"id": 9007199254740993}'
    assert outcome.metrics.fuel_consumed > 0


def test_a_guest_error_is_its_own_kind_with_code_and_message(invoke: Runner) -> None:
    failure = _fails(invoke, _components.GUEST_ERROR, b"", ErrorKind.GUEST_ERROR)
    assert failure.message == "bad-input: no such thing"
    assert failure.caller_side  # the extension's answer, not a fault: breakers ignore it


def test_the_abi_must_match_the_binary(engine: SandboxEngine) -> None:
    with pytest.raises(InvocationFailure) as core_as_component:
        engine.compile(
            _modules.raw('(func (export "handle") (param i32 i32) (result i64) (i64.const 0))'),
            Abi.COMPONENT,
        )
    assert core_as_component.value.kind is ErrorKind.INVALID_MODULE
    assert "needs a component" in core_as_component.value.message
    with pytest.raises(InvocationFailure) as component_as_raw:
        engine.compile(_components.ECHO, Abi.RAW)
    assert component_as_raw.value.kind is ErrorKind.INVALID_MODULE
    assert default_abi(_components.ECHO) is Abi.COMPONENT


def test_an_import_outside_the_world_is_refused_before_it_runs(engine: SandboxEngine) -> None:
    with pytest.raises(InvocationFailure) as caught:
        engine.compile(_components.UNKNOWN_IMPORT, Abi.COMPONENT)
    assert caught.value.kind is ErrorKind.INVALID_MODULE
    assert "evil:escape/sockets@1.0.0" in caught.value.message


def test_an_infinite_loop_runs_out_of_fuel(invoke: Runner) -> None:
    failure = _fails(
        invoke, _components.INFINITE_LOOP, b"", ErrorKind.FUEL_EXHAUSTED, fuel=5_000_000
    )
    assert failure.metrics is not None and failure.metrics.fuel_consumed == 5_000_000


def test_an_infinite_loop_with_fuel_to_spare_times_out(invoke: Runner) -> None:
    _fails(invoke, _components.INFINITE_LOOP, b"", ErrorKind.TIMEOUT, fuel=10**15, timeout_ms=100)


def test_recursion_overflows_the_stack(invoke: Runner) -> None:
    _fails(invoke, _components.RECURSION, b"", ErrorKind.STACK_OVERFLOW, fuel=10**12)


def test_a_module_declaring_too_much_memory_is_a_memory_limit(invoke: Runner) -> None:
    failure = _fails(invoke, _components.declares(1024), b"", ErrorKind.MEMORY_LIMIT)
    assert str(16 * 1024 * 1024) in failure.message


def test_output_over_the_cap_is_refused(invoke: Runner) -> None:
    failure = _fails(invoke, _components.output_of(200_000), b"", ErrorKind.OUTPUT_TOO_LARGE)
    assert "200000 bytes" in failure.message
    assert _run(invoke, _components.output_of(1000)).output == bytes(1000)


# -- a real Python component, built here with componentize-py ------------------------


PYTHON_MEMORY = 64 * 1024 * 1024
"""The probe's limits: CPython's snapshot needs ~20 MB of memory to start with."""


@pytest.fixture(scope="session")
def probe(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    tool = shutil.which("componentize-py", path=str(Path(sys.executable).parent))
    assert tool is not None, "componentize-py comes with the dev group (make install)"
    out = tmp_path_factory.mktemp("probe") / "probe.wasm"
    command = [tool, "-d", str(ROOT / "wit" / "extension"), "-w", "extension"]
    subprocess.run(
        [*command, "componentize", "app", "-o", str(out)],
        cwd=PROBE_SOURCE,
        check=True,
        capture_output=True,
    )
    return out.read_bytes()


Attack = Callable[..., Outcome]


@pytest.fixture
def attack(probe: bytes, invoke: Runner) -> Attack:
    def attack_(request: dict[str, object], **overrides: object) -> Outcome:
        limits = {"memory_bytes": PYTHON_MEMORY, "fuel": 2_000_000_000, **overrides}
        return _run(invoke, probe, request, **limits)

    return attack_


def _attack_fails(
    attack: Attack, request: dict[str, object], kind: ErrorKind, **kw: object
) -> InvocationFailure:
    with pytest.raises(InvocationFailure) as caught:
        attack(request, **kw)
    assert caught.value.kind is kind, caught.value.message
    return caught.value


pytestmark_integration = pytest.mark.integration


@pytestmark_integration
def test_the_environment_and_arguments_are_empty(attack: Attack) -> None:
    assert json.loads(attack({"do": "env"}).output) == {"environ": {}, "argv": []}


@pytestmark_integration
def test_no_file_is_readable(attack: Attack) -> None:
    assert json.loads(attack({"do": "read", "path": "/etc/passwd"}).output) == {
        "refused": "FileNotFoundError"
    }
    assert json.loads(attack({"do": "listdir"}).output) == {"refused": "FileNotFoundError"}


@pytestmark_integration
def test_sockets_and_name_lookup_are_refused_inside_the_guest(attack: Attack) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.2)
        port = listener.getsockname()[1]
        connect = json.loads(attack({"do": "connect", "port": port}).output)
        assert connect == {"refused": "PermissionError"}
        resolve = json.loads(attack({"do": "resolve", "name": "localhost"}).output)
        assert resolve == {"refused": "gaierror"}
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing ever knocked


@pytestmark_integration
def test_stdout_and_stderr_are_log_lines(attack: Attack) -> None:
    outcome = attack({"do": "print"})
    assert [line.message for line in outcome.logs] == ["to stdout", "to stderr"]


@pytestmark_integration
def test_a_log_flood_is_truncated(attack: Attack) -> None:
    outcome = attack({"do": "logs", "lines": 300}, log_bytes=100)
    assert outcome.logs_truncated
    assert 1 < len(outcome.logs) < 20


@pytestmark_integration
def test_clocks_and_random_are_deterministic(attack: Attack) -> None:
    first = json.loads(attack({"do": "clock"}).output)
    second = json.loads(attack({"do": "clock"}).output)
    assert first == second
    assert 946_684_800 <= first["time"] < 946_684_801  # 2000-01-01, the virtual epoch


@pytestmark_integration
def test_waiting_on_a_clock_is_stopped_not_slept(attack: Attack) -> None:
    failure = _attack_fails(attack, {"do": "sleep", "seconds": 3600}, ErrorKind.TIMEOUT)
    assert "cannot sleep" in failure.message


@pytestmark_integration
def test_a_python_loop_runs_out_of_fuel(attack: Attack) -> None:
    _attack_fails(attack, {"do": "loop"}, ErrorKind.FUEL_EXHAUSTED, fuel=100_000_000)


@pytestmark_integration
def test_python_recursion_overflows_the_stack(attack: Attack) -> None:
    _attack_fails(attack, {"do": "recurse"}, ErrorKind.STACK_OVERFLOW, fuel=10**11)


@pytestmark_integration
def test_python_output_over_the_cap(attack: Attack) -> None:
    _attack_fails(attack, {"do": "output", "bytes": 100_000}, ErrorKind.OUTPUT_TOO_LARGE)


@pytestmark_integration
def test_python_guest_error_and_config(attack: Attack) -> None:
    failure = _attack_fails(attack, {"do": "fail"}, ErrorKind.GUEST_ERROR)
    assert failure.message == "bad-input: no such thing"
    assert json.loads(attack({"do": "config"}, config_json=b'{"rate": 7}').output) == {"rate": 7}


@pytestmark_integration
def test_a_host_call_without_a_bridge_is_a_typed_denial(attack: Attack) -> None:
    answer = json.loads(attack({"do": "call", "service": "graph", "method": "Get"}).output)
    assert answer == {"kind": "DENIED", "message": "host calls are not enabled"}


class _Bridge:
    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def call(
        self, request: bytes, context: ExecutionContext, remaining_ms: float
    ) -> bytes | HostCallRefusal:
        self.seen.append(request)
        if len(self.seen) > 1:
            return HostCallRefusal(HostCallErrorKind.UNAVAILABLE, "upstream down")
        return b'{"status": 200, "body": {"ok": true}}'


@pytestmark_integration
def test_a_host_call_reaches_the_bridge_and_a_refusal_comes_back_typed(attack: Attack) -> None:
    bridge = _Bridge()
    request = {"do": "call", "service": "graph", "method": "Get"}
    assert json.loads(attack(request, host_bridge=bridge).output) == {
        "status": 200,
        "body": {"ok": True},
    }
    assert json.loads(bridge.seen[0]) == {"service": "graph", "method": "Get", "body": {}}
    two = _Bridge()
    two.seen.append(b"")
    assert json.loads(attack(request, host_bridge=two).output) == {
        "kind": "UNAVAILABLE",
        "message": "upstream down",
    }


@pytestmark_integration
def test_a_memory_bomb_is_refused_growth_at_the_limit(attack: Attack) -> None:
    """The store refuses growth past ``memory_bytes``: the guest sees MemoryError.

    A guest that handles it goes on (and got less than the limit); one that does
    not ends as MEMORY_LIMIT, with CPython's report in its logs (the trap that
    follows a runtime's out-of-memory report is read as the refusal: the
    copy-on-write engine components run on shows no refused growth itself).
    """
    answer = json.loads(attack({"do": "bomb-caught"}).output)
    assert answer["refused"] == "MemoryError"
    assert 0 < answer["mib"] < PYTHON_MEMORY >> 20
    with pytest.raises(InvocationFailure) as caught:
        attack({"do": "bomb"})
    assert caught.value.kind is ErrorKind.MEMORY_LIMIT, caught.value.message
    assert f"at its limit of {PYTHON_MEMORY} bytes" in caught.value.message
    assert any("MemoryError" in line.message for line in caught.value.logs)


@pytestmark_integration
def test_saying_out_of_memory_without_a_trap_changes_nothing(attack: Attack) -> None:
    """The report alone is not a failure: a guest that prints it and answers is ok,
    and a trap without it stays TRAP."""
    said = attack({"do": "say", "text": "MemoryError"})
    assert said.output == b"{}"
    assert [line.message for line in said.logs] == ["MemoryError"]
    with pytest.raises(InvocationFailure) as caught:
        attack({"do": "crash"})
    assert caught.value.kind is ErrorKind.TRAP, caught.value.message


@pytestmark_integration
def test_concurrent_calls_share_no_state(attack: Attack) -> None:
    counts: list[int] = []

    def one() -> None:
        for _ in range(3):
            counts.append(json.loads(attack({"do": "calls"}).output)["calls"])

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts == [1] * 6  # every call starts from a fresh instance
