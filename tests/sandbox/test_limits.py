"""Naming the limit a guest hit: refused memory, fuel after a stop, the default budget."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.errors import ErrorKind, InvocationFailure
from app.sandbox import (
    Abi,
    CompiledModule,
    DeclaredLimits,
    SandboxEngine,
    _ffi,
    effective_limits,
    run,
)
from app.settings import Settings
from tests.sandbox import _modules
from tests.sandbox.conftest import CONTEXT, Runner

Fails = Callable[..., InvocationFailure]
WASI = Abi.WASI_STDIO
LIMIT = 16 * 1024 * 1024  # the test fixture's memory limit
HUGE = 4096 * 65536  # what the refused guests ask for (256 MiB)


# -- memory refusals --------------------------------------------------------------


def test_wasi_guest_refused_memory_that_exits_1_is_memory_limit(fails: Fails) -> None:
    failure = fails(_modules.WASI_REFUSED_EXITS, ErrorKind.MEMORY_LIMIT, abi=WASI)
    assert f"{HUGE + 65536} bytes refused (limit {LIMIT} bytes)" in failure.message
    assert "exit status 1" in failure.message  # the original cause is kept


def test_single_huge_allocation_is_memory_limit(fails: Fails) -> None:
    failure = fails(_modules.HUGE_ALLOCATION, ErrorKind.MEMORY_LIMIT)
    assert "refused" in failure.message and "unreachable" in failure.message
    # Far below the limit when it asked: no "near the limit" guess involved.
    assert failure.metrics is not None and failure.metrics.peak_memory_bytes == 65536


def test_refused_then_any_trap_is_memory_limit(fails: Fails) -> None:
    failure = fails(_modules.REFUSED_THEN_OUT_OF_BOUNDS, ErrorKind.MEMORY_LIMIT)
    assert "memory fault at wasm address 0x2000000" in failure.message


def test_refused_then_bad_output_pointer_is_memory_limit(fails: Fails) -> None:
    failure = fails(_modules.REFUSED_THEN_BAD_OUTPUT, ErrorKind.MEMORY_LIMIT)
    assert "outside guest memory" in failure.message


def test_grow_bomb_names_the_refused_growth(fails: Fails) -> None:
    failure = fails(_modules.GROW_BOMB, ErrorKind.MEMORY_LIMIT)
    # 1 page, then 16 at a time: 241 pages granted, 257 refused.
    assert f"{257 * 65536} bytes refused" in failure.message


def test_growth_within_the_limit_then_a_trap_is_still_trap(fails: Fails) -> None:
    failure = fails(_modules.GROWN_THEN_TRAPS, ErrorKind.TRAP)
    assert "divide by zero" in failure.message
    assert failure.metrics is not None and failure.metrics.peak_memory_bytes == 240 * 65536


def test_refused_guest_that_recovers_succeeds(invoke: Runner) -> None:
    outcome = invoke(_modules.REFUSED_THEN_RECOVERS)
    assert outcome.output == b"ok"
    assert outcome.memory_refused_bytes == HUGE + 65536
    assert outcome.metrics.peak_memory_bytes == 17 * 65536


def test_limits_the_runtime_enforces_keep_their_kind_after_a_refusal(fails: Fails) -> None:
    fails(_modules.REFUSED_THEN_SPINS, ErrorKind.FUEL_EXHAUSTED, fuel=1_000_000)


def test_declared_initial_memory_above_the_limit_is_memory_limit(fails: Fails) -> None:
    failure = fails(_modules.WASI_HUGE_MEMORY, ErrorKind.MEMORY_LIMIT, abi=WASI)
    assert f"declares {512 * 65536} bytes of initial memory" in failure.message
    raw = fails(_modules.HUGE_MEMORY, ErrorKind.MEMORY_LIMIT)
    assert "initial memory" in raw.message


# A C program (wasi-libc's malloc grows memory with memory.grow): allocates the
# number of MiB read from stdin, exits 1 with a message if malloc says no.
ALLOCATE_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    unsigned mib = 0;
    if (scanf("%u", &mib) != 1) return 2;
    size_t size = (size_t)mib << 20;
    char *p = malloc(size);
    if (p == NULL) {
        fputs("out of memory\n", stderr);
        return 1;
    }
    memset(p, 7, size);
    printf("%d\n", p[size - 1]);
    return 0;
}
"""


@pytest.fixture(scope="module")
def allocate_c(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    # A missing tool fails the test rather than skipping it (`make test` installs it).
    assert shutil.which("clang") is not None, "no clang: run `make guest-toolchain`"
    src = tmp_path_factory.mktemp("guest") / "allocate.c"
    src.write_text(ALLOCATE_C)
    out = src.with_suffix(".wasm")
    subprocess.run(
        ["clang", "--target=wasm32-wasi", "-Os", "-Wl,--stack-first", "-o", str(out), str(src)],
        check=True,
    )
    return Path(out).read_bytes()


@pytest.mark.integration
def test_c_guest_whose_malloc_fails_is_memory_limit(
    allocate_c: bytes, invoke: Runner, fails: Fails
) -> None:
    assert invoke(allocate_c, b"4", abi=WASI).output == b"7\n"  # fits in 16 MiB
    failure = fails(allocate_c, ErrorKind.MEMORY_LIMIT, b"64", abi=WASI)
    assert "refused (limit 16777216 bytes)" in failure.message
    assert "exit status 1" in failure.message
    assert [line.message for line in failure.logs] == ["out of memory"]


def test_guest_memories_are_released(invoke: Runner, fails: Fails, engine: SandboxEngine) -> None:
    assert engine.watches_memory
    before = _ffi.live_memories()
    for _ in range(10):
        invoke(_modules.ECHO, b"x")
        invoke(_modules.REFUSED_THEN_RECOVERS)
    # Process-wide: a guest another test left running may come or go meanwhile;
    # a leak would leave 20 more.
    assert _ffi.live_memories() - before <= 2


# -- fuel after a stop -------------------------------------------------------------


def test_fuel_after_a_timeout_is_what_the_loop_burnt(invoke: Runner, fails: Fails) -> None:
    # A short run of the same kind of loop: exact fuel, a fraction of a millisecond.
    short = invoke(_modules.counted_loop(100_000), fuel=10**12)
    assert short.metrics.fuel_consumed > 100_000
    started = time.monotonic()
    failure = fails(_modules.INFINITE_LOOP, ErrorKind.TIMEOUT, fuel=10**15, timeout_ms=200)
    assert time.monotonic() - started >= 0.19
    assert failure.metrics is not None
    burnt = failure.metrics.fuel_consumed
    # ~200 ms of spinning is far more than the short run (and than the ~10 k
    # reported when the stale count was read after the trap), and less than all.
    assert burnt > 2 * short.metrics.fuel_consumed
    assert 1_000_000 < burnt < 10**15


def test_fuel_after_a_timeout_of_a_loop_that_calls(fails: Fails, invoke: Runner) -> None:
    short = invoke(_modules.counted_loop(100_000), fuel=10**12)
    failure = fails(_modules.CALLING_LOOP, ErrorKind.TIMEOUT, fuel=10**15, timeout_ms=200)
    assert failure.metrics is not None
    assert 2 * short.metrics.fuel_consumed < failure.metrics.fuel_consumed < 10**15


def test_fuel_after_a_cancel_is_what_the_loop_burnt(invoke: Runner) -> None:
    short = invoke(_modules.counted_loop(100_000), fuel=10**12)
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    try:
        invoke(_modules.INFINITE_LOOP, fuel=10**15, cancel=cancel)
    except InvocationFailure as failure:
        assert failure.kind is ErrorKind.TIMEOUT and "cancelled" in failure.message
        assert failure.metrics is not None
        # Half a second of spinning, however little CPU a loaded machine gives it,
        # is more than the short run; the stale count after the trap was ~10 k,
        # less than the short run itself.
        assert failure.metrics.fuel_consumed > 2 * short.metrics.fuel_consumed
    else:
        raise AssertionError("an infinite loop returned")
    finally:
        timer.cancel()


# -- the default budget -----------------------------------------------------------


def test_default_limits_stop_a_loop_with_fuel_not_the_deadline(
    engine: SandboxEngine, compile_module: Callable[..., CompiledModule]
) -> None:
    """The default fuel runs out well before the default deadline (README's limits table)."""
    limits = effective_limits(DeclaredLimits(), Settings().limit_bounds, None)
    assert limits.timeout_ms == 1_000
    compiled = compile_module(_modules.INFINITE_LOOP)
    # The kind shows the fuel ran out first. How much sooner is a matter of the CPU
    # the guest got, so that is the clock (it runs on this thread): a busy machine
    # stretches wall time, not the CPU a budget of fuel takes.
    started = time.thread_time()
    try:
        run(engine, compiled, b"", limits, context=CONTEXT, deadline=None, include_logs=False)
    except InvocationFailure as failure:
        assert failure.kind is ErrorKind.FUEL_EXHAUSTED, failure
        assert failure.metrics is not None
        assert failure.metrics.fuel_consumed == limits.fuel
    else:
        raise AssertionError("an infinite loop returned")
    assert time.thread_time() - started < limits.timeout_ms / 1000
