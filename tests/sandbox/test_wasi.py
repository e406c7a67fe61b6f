"""The wasi-stdio ABI: stdio in memory, no ambient authority, bounded sleeps."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from app.errors import ErrorKind, InvocationFailure
from app.invocation import LogLevel
from app.sandbox import Abi
from tests.sandbox import _modules
from tests.sandbox.conftest import Runner

Fails = Callable[..., InvocationFailure]
WASI = Abi.WASI_STDIO
EBADF = 8


def test_stdin_to_stdout_and_stderr_to_logs(invoke: Runner) -> None:
    data = b"x" * 150_000 + b"end"
    outcome = invoke(_modules.CAT, data, abi=WASI, output_bytes=1024 * 1024)
    assert outcome.output == data
    assert [(line.level, line.message) for line in outcome.logs] == [
        (LogLevel.INFO, "hello from stderr"),
        (LogLevel.INFO, "partial"),
    ]


def test_logs_omitted_unless_asked(invoke: Runner) -> None:
    outcome = invoke(_modules.CAT, b"abc", abi=WASI, include_logs=False)
    assert outcome.output == b"abc"
    assert outcome.logs == []


def test_empty_stdin(invoke: Runner) -> None:
    assert invoke(_modules.CAT, b"", abi=WASI).output == b""


def test_no_environment_and_no_args(invoke: Runner) -> None:
    outcome = invoke(_modules.ENVIRONMENT, abi=WASI)
    assert struct.unpack("<4I", outcome.output) == (0, 0, 0, 0)


def test_cannot_open_etc_passwd(invoke: Runner) -> None:
    outcome = invoke(_modules.OPEN_PASSWD, abi=WASI)
    assert len(outcome.output) == 16, "a path_open succeeded and read something"
    assert b"root:" not in outcome.output
    assert struct.unpack("<4I", outcome.output) == (EBADF, EBADF, EBADF, EBADF)


def test_sleep_longer_than_deadline_times_out_on_time(fails: Fails) -> None:
    started = time.monotonic()
    five_seconds = struct.pack("<Q", 5_000_000_000)
    failure = fails(_modules.SLEEP, ErrorKind.TIMEOUT, five_seconds, abi=WASI, timeout_ms=300)
    elapsed = time.monotonic() - started
    # Not before the deadline, and well before the sleep itself would have ended
    # (a bound the behaviour needs, not how fast this machine is today).
    assert 0.29 < elapsed < 2.5, elapsed
    assert "300 ms" in failure.message


def test_short_sleep_completes(invoke: Runner) -> None:
    started = time.monotonic()
    outcome = invoke(_modules.SLEEP, struct.pack("<Q", 20_000_000), abi=WASI)
    assert time.monotonic() - started >= 0.02
    assert outcome.output == b"awake\0\0\0" + struct.pack("<IIQ", 0, 1, 42)


def test_proc_exit_zero_is_success(invoke: Runner) -> None:
    assert invoke(_modules.EXIT, b"\0", abi=WASI).output == b"bye"


def test_proc_exit_nonzero_is_a_trap(fails: Fails) -> None:
    failure = fails(_modules.EXIT, ErrorKind.TRAP, b"\x03", abi=WASI)
    assert "exit status 3" in failure.message


def test_stdout_flood_is_output_too_large(fails: Fails) -> None:
    # With fuel for minutes, the kind alone shows the cap stopped it at once: later,
    # the 2 s timeout would have (TIMEOUT), or the fuel (FUEL_EXHAUSTED).
    fails(_modules.STDOUT_FLOOD, ErrorKind.OUTPUT_TOO_LARGE, abi=WASI, fuel=10**12)


def test_host_call_without_alloc_returns_negative(invoke: Runner) -> None:
    outcome = invoke(_modules.WASI_HOST_CALL_NO_ALLOC, abi=WASI)
    assert struct.unpack("<q", outcome.output) == (-1,)


def test_wasi_module_must_export_start(fails: Fails, compile_module: Callable[..., object]) -> None:
    try:
        compile_module(_modules.WASI_WITHOUT_START, WASI)
    except InvocationFailure as failure:
        assert failure.kind is ErrorKind.INVALID_MODULE
        assert "_start" in failure.message
    else:
        raise AssertionError("compiled a wasi module without _start")
