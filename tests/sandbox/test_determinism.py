"""wasi-stdio clocks and random: deterministic by default, real when the run grants it."""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from app.errors import ErrorKind, InvocationFailure
from app.invocation import Outcome
from app.sandbox import Abi, CompiledModule, _hostfuncs
from app.sandbox._state import CLOCK_STEP_NS, REALTIME_START_NS, InvocationState
from tests.sandbox import _modules
from tests.sandbox.conftest import Runner

Fails = Callable[..., InvocationFailure]
WASI = Abi.WASI_STDIO
ESUCCESS, EBADF, EFAULT, EINVAL = 0, 8, 21, 28
MS = 1_000_000
_CLOCK_RANDOM = struct.Struct("<5I8x4Q16s")


def clock_random(invoke: Runner, **kw: object) -> tuple[tuple[int, ...], list[int], bytes]:
    """(errnos, [realtime, realtime again, monotonic, realtime resolution], random)."""
    *values, random = _CLOCK_RANDOM.unpack(invoke(_modules.CLOCK_RANDOM, abi=WASI, **kw).output)
    return tuple(values[:5]), values[5:], random


def test_2000_01_01_is_the_start_instant() -> None:
    assert datetime.fromtimestamp(REALTIME_START_NS // 10**9, UTC) == datetime(
        2000, 1, 1, tzinfo=UTC
    )


def test_deterministic_runs_give_identical_output(invoke: Runner) -> None:
    first = invoke(_modules.CLOCK_RANDOM, abi=WASI).output
    assert invoke(_modules.CLOCK_RANDOM, abi=WASI).output == first
    errnos, (real1, real2, mono, res), random = clock_random(invoke)
    assert errnos == (ESUCCESS,) * 5
    assert real1 == REALTIME_START_NS
    assert real2 == REALTIME_START_NS + CLOCK_STEP_NS  # every read advances 1 µs
    assert mono == 2 * CLOCK_STEP_NS  # monotonic starts at 0 and moves with realtime
    assert res == CLOCK_STEP_NS
    assert random != bytes(16) and len(set(random)) > 8


def test_deterministic_across_threads(invoke: Runner) -> None:
    expected = invoke(_modules.CLOCK_RANDOM, abi=WASI).output
    outputs: list[bytes] = []

    def worker() -> None:
        for _ in range(20):
            outputs.append(invoke(_modules.CLOCK_RANDOM, abi=WASI).output)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outputs == [expected] * 80


def test_clock_and_random_in_the_start_function(invoke: Runner) -> None:
    outcome = invoke(_modules.CLOCK_IN_START, abi=WASI)
    realtime, random = struct.unpack("<Q8s", outcome.output)
    assert realtime == REALTIME_START_NS
    assert random == invoke(_modules.CLOCK_IN_START, abi=WASI).output[8:] != bytes(8)


def test_real_clock_and_random_when_granted(invoke: Runner) -> None:
    errnos, (real1, real2, mono, res), random = clock_random(invoke, real_clock_and_random=True)
    assert errnos == (ESUCCESS,) * 5
    assert abs(real1 - time.time_ns()) < 60 * 10**9
    assert datetime.fromtimestamp(real1 / 10**9, UTC).year >= 2025
    assert real2 >= real1
    assert 0 < mono < 10 * 10**9  # wasmtime counts from the WASI context's creation
    assert res != CLOCK_STEP_NS  # wasmtime's own resolution (1 ns)
    _, _, again = clock_random(invoke, real_clock_and_random=True)
    assert random != again


def test_real_mode_is_ignored_for_raw_guests(invoke: Runner) -> None:
    assert invoke(_modules.ECHO, b"x", real_clock_and_random=True).output == b"x"


@pytest.mark.parametrize(
    ("ptr", "length", "errno"),
    [
        (1024, 16, ESUCCESS),
        (65536 - 16, 16, ESUCCESS),  # ends exactly at the end of memory
        (65536 - 15, 16, EFAULT),
        (65536, 1, EFAULT),
        (0xFFFFFFF0, 32, EFAULT),  # would wrap around 4 GiB
        (70_000, 0, ESUCCESS),  # touches nothing
        (0, _hostfuncs.RANDOM_MAX_CALL + 1, EINVAL),  # over the per-call cap
        (0, 0xFFFFFFFF, EINVAL),
    ],
)
def test_random_get_bounds(invoke: Runner, ptr: int, length: int, errno: int) -> None:
    outcome = invoke(_modules.RANDOM_AT, struct.pack("<II", ptr, length), abi=WASI)
    assert struct.unpack("<I", outcome.output) == (errno,)


def test_random_get_budget_per_invocation(invoke: Runner) -> None:
    outcome = invoke(_modules.RANDOM_BUDGET, abi=WASI)
    errnos = struct.unpack("<17I", outcome.output)
    assert _hostfuncs.RANDOM_BUDGET == 16 * _hostfuncs.RANDOM_MAX_CALL
    assert errnos == (ESUCCESS,) * 16 + (EINVAL,)


def test_out_of_bounds_random_traps_in_real_mode(fails: Fails) -> None:
    # wasmtime's own random_get traps instead of returning EFAULT.
    fails(
        _modules.RANDOM_AT,
        ErrorKind.TRAP,
        struct.pack("<II", 65530, 16),
        abi=WASI,
        real_clock_and_random=True,
    )


@pytest.mark.parametrize(
    ("clock_id", "ptr", "errnos"),
    [
        (0, 1024, (ESUCCESS, ESUCCESS)),
        (1, 1025, (ESUCCESS, ESUCCESS)),  # unaligned is fine
        (1, 65536 - 8, (ESUCCESS, ESUCCESS)),
        (0, 65536 - 7, (EFAULT, EFAULT)),
        (1, 0xFFFFFFFC, (EFAULT, EFAULT)),
        (2, 1024, (EBADF, EBADF)),  # process and thread CPU time: EBADF, as wasmtime
        (3, 1024, (EBADF, EBADF)),
        (4, 1024, (EINVAL, EINVAL)),
        (0xFFFFFFFF, 1024, (EINVAL, EINVAL)),
    ],
)
def test_clock_errnos(invoke: Runner, clock_id: int, ptr: int, errnos: tuple[int, int]) -> None:
    outcome = invoke(_modules.CLOCK_AT, struct.pack("<II", clock_id, ptr), abi=WASI)
    assert struct.unpack("<II", outcome.output) == errnos


def sleep_and_read(
    invoke: Runner, clock_id: int, flags: int, timeout_ns: int, **kw: object
) -> Outcome:
    return invoke(
        _modules.SLEEP_AND_READ, struct.pack("<IIQ", clock_id, flags, timeout_ns), abi=WASI, **kw
    )


def test_sleep_advances_the_virtual_clock(invoke: Runner) -> None:
    started = time.monotonic()
    outcome = sleep_and_read(invoke, 1, 0, 20 * MS)
    assert time.monotonic() - started >= 0.02  # the sleep is real
    assert struct.unpack("<IIQQ", outcome.output) == (ESUCCESS, 1, 0, CLOCK_STEP_NS + 20 * MS)


def test_absolute_sleep_on_the_virtual_realtime_clock(invoke: Runner) -> None:
    started = time.monotonic()
    outcome = sleep_and_read(invoke, 0, 1, 10 * MS)  # until first reading + 10 ms
    assert time.monotonic() - started >= 0.009
    errno, events, t1, t2 = struct.unpack("<IIQQ", outcome.output)
    assert (errno, events, t1, t2) == (ESUCCESS, 1, REALTIME_START_NS, REALTIME_START_NS + 10 * MS)


def test_absolute_sleep_in_the_past_returns_at_once(invoke: Runner) -> None:
    # Until the first reading: already passed. A sleep that waited would read a
    # later clock; one that never returned would be the 2 s TIMEOUT instead.
    outcome = sleep_and_read(invoke, 1, 1, 0)
    assert struct.unpack("<IIQQ", outcome.output) == (ESUCCESS, 1, 0, CLOCK_STEP_NS)


def test_long_virtual_sleep_still_times_out(fails: Fails) -> None:
    started = time.monotonic()
    failure = fails(
        _modules.SLEEP_AND_READ,
        ErrorKind.TIMEOUT,
        struct.pack("<IIQ", 0, 1, 5_000 * MS),
        abi=WASI,
        timeout_ms=300,
    )
    # Not before the deadline, and well before the 5 s sleep would have ended.
    assert 0.29 < time.monotonic() - started < 2.5
    assert "300 ms" in failure.message


def test_real_mode_sleep_uses_real_clocks(invoke: Runner) -> None:
    outcome = sleep_and_read(invoke, 1, 0, 20 * MS, real_clock_and_random=True)
    errno, events, t1, t2 = struct.unpack("<IIQQ", outcome.output)
    assert (errno, events) == (ESUCCESS, 1)
    assert t2 - t1 >= 20 * MS


def test_internal_failure_stops_the_guest(fails: Fails, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: InvocationState, length: int) -> bytes:
        raise RuntimeError("keystream broke")

    monkeypatch.setattr(InvocationState, "random_bytes", broken)
    failure = fails(_modules.CLOCK_RANDOM, ErrorKind.INTERNAL, abi=WASI)
    assert failure.message == "random_get failed"


def test_modules_without_clock_or_random_link_once(
    compile_module: Callable[..., CompiledModule],
) -> None:
    plain = compile_module(_modules.CAT, WASI)
    assert plain.pre_real is plain.pre
    uses = compile_module(_modules.CLOCK_RANDOM, WASI)
    assert uses.pre_real is not uses.pre
    raw = compile_module(_modules.ECHO)
    assert raw.pre_real is raw.pre
