"""Hostile raw-ABI modules: each must fail with exactly the right kind, and harmlessly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from app.errors import ErrorKind, InvocationFailure
from app.sandbox import SandboxEngine
from app.sandbox._state import TRUNCATION_MARKER
from tests.sandbox import _modules
from tests.sandbox.conftest import Runner, assert_healthy

Fails = Callable[..., InvocationFailure]


def test_echo(invoke: Runner) -> None:
    data = bytes(range(256)) * 4
    outcome = invoke(_modules.ECHO, data)
    assert outcome.output == data
    assert outcome.resolved_version == ""
    assert outcome.metrics.fuel_consumed > 0
    assert outcome.metrics.peak_memory_bytes == 65536
    assert outcome.metrics.duration_us > 0


def test_empty_input(invoke: Runner) -> None:
    assert invoke(_modules.ECHO, b"").output == b""


def test_infinite_loop_exhausts_fuel(fails: Fails) -> None:
    failure = fails(_modules.INFINITE_LOOP, ErrorKind.FUEL_EXHAUSTED, fuel=1_000_000)
    assert "1000000" in failure.message
    assert failure.metrics is not None and failure.metrics.fuel_consumed == 1_000_000


def test_infinite_loop_with_fuel_to_spare_times_out(fails: Fails) -> None:
    started = time.monotonic()
    fails(_modules.INFINITE_LOOP, ErrorKind.TIMEOUT, fuel=10**15, timeout_ms=200)
    # Not before its timeout; the fuel would have lasted hours.
    assert time.monotonic() - started > 0.19


def test_caller_deadline_beats_timeout(fails: Fails) -> None:
    started = time.monotonic()
    fails(
        _modules.INFINITE_LOOP,
        ErrorKind.TIMEOUT,
        fuel=10**15,
        timeout_ms=5_000,
        deadline=time.monotonic() + 0.15,
    )
    # Both give TIMEOUT: well before the 5 s timeout means the deadline ended it.
    assert time.monotonic() - started < 2.5


def test_deadline_already_passed(fails: Fails) -> None:
    fails(_modules.ECHO, ErrorKind.TIMEOUT, deadline=time.monotonic() - 1)


def test_memory_grow_bomb(fails: Fails) -> None:
    failure = fails(_modules.GROW_BOMB, ErrorKind.MEMORY_LIMIT)
    assert failure.metrics is not None
    assert 16 * 1024 * 1024 - 16 * 65536 < failure.metrics.peak_memory_bytes <= 16 * 1024 * 1024


def test_huge_initial_memory(fails: Fails) -> None:
    failure = fails(_modules.HUGE_MEMORY, ErrorKind.MEMORY_LIMIT)
    assert "initial memory" in failure.message


def test_unbounded_recursion(fails: Fails) -> None:
    fails(_modules.RECURSION, ErrorKind.STACK_OVERFLOW, fuel=10**12)


def test_output_larger_than_cap(fails: Fails) -> None:
    fails(_modules.BIG_OUTPUT, ErrorKind.OUTPUT_TOO_LARGE, output_bytes=1024)


def test_output_out_of_bounds(fails: Fails) -> None:
    failure = fails(_modules.OUT_OF_BOUNDS_OUTPUT, ErrorKind.TRAP)
    assert "outside guest memory" in failure.message


def test_unreachable_trap_has_clean_message(fails: Fails) -> None:
    failure = fails(_modules.UNREACHABLE, ErrorKind.TRAP)
    assert "unreachable" in failure.message
    assert "backtrace" not in failure.message and "\n" not in failure.message


def test_log_flood_is_truncated_not_fatal(invoke: Runner) -> None:
    # 300 lines: past the budget the calls are paced (at most
    # ``host_paced_calls_per_s`` a second process-wide), well within the deadline.
    outcome = invoke(_modules.log_flood(300), log_bytes=1000)
    assert outcome.output == b"ok"
    assert outcome.logs_truncated
    assert outcome.logs[-1].message == TRUNCATION_MARKER
    kept = outcome.logs[:-1]
    assert len(kept) == 1000 // 64
    assert sum(len(line.message) for line in kept) <= 1000
    assert_healthy(invoke)


def test_host_log_out_of_bounds_traps(fails: Fails) -> None:
    failure = fails(_modules.BAD_LOG_POINTER, ErrorKind.TRAP)
    assert "host_log" in failure.message


@pytest.mark.parametrize(
    ("wasm", "needle"),
    [
        (_modules.UNKNOWN_IMPORT, "env.system"),
        (_modules.WRONG_HOST_SIGNATURE, "ameide"),
        (_modules.NO_ALLOC, "alloc"),
        (_modules.WRONG_HANDLE_TYPE, "handle"),
        (b"\0asm\x01\0\0\0\x01\x05garbage", "not a valid wasm module"),
        (b"(module)", "not a wasm binary"),
        (b"", "not a wasm binary"),
    ],
)
def test_invalid_modules(engine: SandboxEngine, wasm: bytes, needle: str) -> None:
    with pytest.raises(InvocationFailure) as info:
        engine.compile(wasm, "raw")
    assert info.value.kind is ErrorKind.INVALID_MODULE
    assert needle in info.value.message


def test_wasi_import_refused_for_raw_abi(engine: SandboxEngine) -> None:
    with pytest.raises(InvocationFailure) as info:
        engine.compile(_modules.CAT, "raw")
    assert info.value.kind is ErrorKind.INVALID_MODULE
    assert "wasi_snapshot_preview1.fd_write" in info.value.message


def test_unknown_abi(engine: SandboxEngine) -> None:
    with pytest.raises(InvocationFailure) as info:
        engine.compile(_modules.ECHO, "component")
    assert info.value.kind is ErrorKind.INVALID_MODULE


def test_no_state_shared_between_calls(invoke: Runner) -> None:
    for _ in range(3):
        assert invoke(_modules.COUNTER).output == b"\x01\0\0\0\x01\0\0\0"


def test_concurrent_calls_share_no_state(invoke: Runner) -> None:
    outputs: list[bytes] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        outputs.extend(invoke(_modules.COUNTER).output for _ in range(20))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outputs == [b"\x01\0\0\0\x01\0\0\0"] * 80
