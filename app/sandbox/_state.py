"""Everything one invocation accumulates while its guest runs.

Host functions are registered once per engine (so instances can be
pre-linked), so they find the invocation they serve through a thread-local:
wasmtime runs host functions on the thread that called into wasm.

Failures are *recorded here*, never raised through wasmtime: wasmtime-py
keeps the last host-function exception in one process-wide variable and
re-raises it from whichever thread next sees a trap, so with several worker
threads a raised exception can surface in another invocation (measured: 10
of 300 fuel-exhausted calls received a neighbour's exception). A host
function that must stop the guest records the reason and sets the store's
fuel to zero; the guest traps at its next fuel check and the runner reports
the recorded reason.

A wasi-stdio invocation without a tier grant for real clocks and randomness
is *deterministic*: its clocks are virtual (:meth:`InvocationState.read_clock`)
and its random bytes come from a constant-seeded keystream
(:meth:`InvocationState.random_bytes`), so the same input gives the same output.
"""

from __future__ import annotations

import contextvars
import errno
import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import wasmtime

from app.errors import ErrorKind, InvocationFailure
from app.invocation import ExecutionContext, LogLevel, LogLine
from app.sandbox._limits import Limits
from app.telemetry import bound_fields, get_logger

__all__ = [
    "CLOCK_REALTIME",
    "CLOCK_STEP_NS",
    "HOST_PACE_FACTOR",
    "HOST_PACE_MIN_S",
    "HOST_TIME_UNPACED_S",
    "REALTIME_START_NS",
    "TRUNCATION_MARKER",
    "InvocationState",
    "activate",
    "current",
]

if TYPE_CHECKING:
    from app.sandbox._host_bridge import HostBridge
    from app.sandbox._pacer import Pacer

TRUNCATION_MARKER = "[log truncated]"
REALTIME_START_NS = 946_684_800 * 1_000_000_000
"""Where the virtual realtime clock starts: 2000-01-01T00:00:00Z in ns since the epoch."""
CLOCK_STEP_NS = 1_000
"""How far every virtual clock read advances the clock (also its reported resolution)."""
CLOCK_REALTIME = 0
_RANDOM_SEED = b"ameide extensions-runtime deterministic random v1"
_MAX_PENDING_STDERR = 64 * 1024
_OUT_OF_MEMORY = re.compile(rb"\bMemoryError\b|\bout of memory\b", re.IGNORECASE)
"""How a guest's language runtime says an allocation failed: CPython's report of
the exception, SpiderMonkey's and most C runtimes' abort text."""
HOST_TIME_UNPACED_S = 0.002
"""Time per invocation its host functions (and WASI stdout/stderr writes) run at full speed."""
HOST_PACE_MIN_S = 100e-6
"""Past ``HOST_TIME_UNPACED_S``, the least pause after each call; see ``InvocationState.pace``."""
HOST_PACE_FACTOR = 4.0

_log = get_logger("app.sandbox.guest")
_LOG_METHODS = {
    LogLevel.DEBUG: "debug",
    LogLevel.INFO: "info",
    LogLevel.WARN: "warning",
    LogLevel.ERROR: "error",
}


@dataclass(slots=True, eq=False)
class InvocationState:
    """Per-invocation limits, sinks and the first failure, owned by one run."""

    limits: Limits
    deadline: float
    """``time.monotonic()`` at which the guest is stopped with TIMEOUT."""
    cancel: threading.Event
    context: ExecutionContext
    include_logs: bool
    bridge: HostBridge | None = None
    config_json: bytes = b"{}"
    """The definition's static ``config``, as the guest reads it (``host_config``)."""
    store: wasmtime.Store | None = None
    after_call: Callable[[], None] | None = None
    """Run once the store is dropped (components: ask for the next spare)."""
    memory: wasmtime.Memory | None = None
    """The guest's exported memory once instantiated (saves host functions a lookup)."""
    failure: InvocationFailure | None = None
    fuel_left_at_stop: int | None = None
    """Fuel left when the runtime stopped the guest (the store's count is stale then)."""
    fuel_rate: float = 0.0
    """Fuel per CPU second this guest burns (learnt from earlier runs): estimates the
    fuel a call-free loop burnt since compiled code last wrote its count back."""
    fuel_seen: int | None = None
    """Remaining fuel as compiled code last wrote it back, seen at an epoch tick."""
    fuel_seen_since: float = 0.0
    """``time.thread_time()`` at the last tick before ``fuel_seen`` was written back."""
    fuel_fresh: bool = False
    """The last tick saw a new ``fuel_seen``: the guest writes its count back often."""
    last_tick_cpu: float | None = None
    """``time.thread_time()`` at the previous epoch tick (``None``: none yet)."""
    memory_refused: int = 0
    """Largest linear memory (bytes) refused to the guest: initial size or memory.grow."""
    reads_out_of_memory: bool = False
    """Watch guest lines for a runtime's out-of-memory report (components only:
    the core ABIs' watched memories see a refused growth themselves)."""
    out_of_memory_said: bool = False
    """A guest line reported a failed allocation (read even past the log budget)."""
    logs: list[LogLine] = field(default_factory=list)
    log_bytes: int = 0
    logs_truncated: bool = False
    host_calls: int = 0
    peak_memory: int = 0
    stdout: bytearray = field(default_factory=bytearray)
    stdout_is_log: bool = False
    """Stdout is log lines too (a component answers through ``handle``, not stdout)."""
    stderr_pending: bytearray = field(default_factory=bytearray)
    wasi_epoch_ns: int = 0
    """``time.monotonic_ns()`` when the WASI context was made (its monotonic zero)."""
    deterministic: bool = False
    """Virtual clocks and seeded random (wasi-stdio unless the tier grants real ones)."""
    virtual_ns: int = 0
    """How far the virtual clocks have advanced: the monotonic reading."""
    random_calls: int = 0
    random_used: int = 0
    host_time_s: float = 0.0
    """Time spent in Python host functions so far (paced past ``HOST_TIME_UNPACED_S``)."""
    cpu_slice_s: float | None = None
    """For a run on the event loop: CPU seconds it may use before it is stopped (TIMEOUT)
    to be re-run on a worker thread; such a run never pauses in a host function."""
    cpu_started: float = 0.0
    """``time.thread_time()`` when the run began (the runner reads or is given it)."""
    pacer: Pacer | None = None
    """The process-wide schedule paced host-function calls wait for (see ``_pacer``)."""
    log_context: contextvars.Context = field(default_factory=contextvars.copy_context)
    """The caller's context, captured on the worker thread (O(1)): WASI stderr
    callbacks run on wasmtime's own threads, which have none. Its bound log
    fields (extension, version...) are read from it at the first guest line."""
    _log_fields: dict[str, object] | None = None
    """Deterministic random bytes handed out (checked against a per-invocation budget)."""

    # -- failures ---------------------------------------------------------
    def record(self, kind: ErrorKind, message: str) -> None:
        """Remember why the invocation failed; the first reason wins."""
        if self.failure is None:
            self.failure = InvocationFailure(kind, message)

    def stop(self, kind: ErrorKind, message: str) -> None:
        """Record a failure and make the guest trap at its next fuel check.

        Only valid on the thread running the guest (the store is not shared).
        """
        self.record(kind, message)
        if self.store is not None and self.fuel_left_at_stop is None:
            self.fuel_left_at_stop = self.store.get_fuel()
            self.store.set_fuel(0)

    def remaining_s(self) -> float:
        """Seconds before the deadline (negative once it passed)."""
        return self.deadline - time.monotonic()

    def pace(self, started: float, *, holds_gil: bool = True) -> None:
        """Account one host-function call that began at ``started`` (``perf_counter``);
        once the invocation's host functions have used ``HOST_TIME_UNPACED_S``,
        pause after each call with the GIL released.

        Host functions are Python, so they hold the GIL, which the event loop and
        every other guest need too. A guest calling ``host_log`` (or a shadowed
        WASI function, or writing stderr a byte at a time) in a tight loop would
        hold it nearly all the time, and a thread waiting for the GIL then waits
        a whole switch interval (5 ms) per acquisition (measured by ``make
        reliability``: a 50,000-line log flood on two threads took good
        traffic's p95 from ~4 ms to seconds). Past the allowance each call is
        followed by a pause of ``HOST_PACE_FACTOR`` times its own duration
        (at least ``HOST_PACE_MIN_S``), so such a guest holds the GIL a fifth
        of the time at most, in short stretches. It only slows itself: its
        deadline still holds (a pause never passes it, and ends if the caller
        leaves). ``holds_gil=False`` is for calls that mostly wait (a host call
        on the network, ``poll_oneoff``): their time is not counted and they
        pause the least. Every paced call also waits for its slot of the
        process-wide ``pacer``, so all flooding guests together take the GIL
        at most its rate a second, however many threads they run on.
        """
        spent = time.perf_counter() - started
        if holds_gil:
            self.host_time_s += spent
        if self.host_time_s <= HOST_TIME_UNPACED_S:
            return
        if self.cpu_slice_s is not None:
            # On the event loop a pause would stall every other request: stop here,
            # and the runtime re-runs the guest on a worker thread.
            self.stop(ErrorKind.TIMEOUT, "inline slice used up by host functions")
            return
        pause = max(HOST_PACE_MIN_S, HOST_PACE_FACTOR * spent if holds_gil else 0.0)
        remaining = self.remaining_s()
        slot = self.pacer.reserve(self.deadline) if self.pacer is not None else 0.0
        if slot is None or pause >= remaining:
            # No time left for another paced call: end it now rather than let the
            # guest call on unpaced until the next epoch tick notices the deadline.
            if remaining > 0:
                self.cancel.wait(remaining)
            self.stop(ErrorKind.TIMEOUT, self.timeout_message())
            return
        self.cancel.wait(max(pause, slot))

    # -- deterministic clocks and random ---------------------------------------
    def clock_now(self, clock_id: int) -> int:
        """The virtual clock's value without reading (advancing) it.

        Realtime is ``REALTIME_START_NS`` plus the advance, every other clock
        (monotonic) the advance alone: both move together.
        """
        base = REALTIME_START_NS if clock_id == CLOCK_REALTIME else 0
        return base + self.virtual_ns

    def read_clock(self, clock_id: int) -> int:
        """Read a virtual clock: its value now, and ``CLOCK_STEP_NS`` later next time."""
        value = self.clock_now(clock_id)
        self.virtual_ns += CLOCK_STEP_NS
        return value

    def advance_clock(self, ns: int) -> None:
        """Move the virtual clocks forward by ``ns`` (a completed sleep)."""
        self.virtual_ns += max(0, ns)

    def random_bytes(self, length: int) -> bytes:
        """The next ``length`` deterministic random bytes (one SHAKE-256 output per call)."""
        seed = _RANDOM_SEED + self.random_calls.to_bytes(8, "little")
        self.random_calls += 1
        self.random_used += length
        return hashlib.shake_256(seed).digest(length)

    # -- callbacks from app.sandbox._ffi ------------------------------------
    def on_epoch(self, fuel: int | None = None) -> bool:
        """Go on unless a failure is recorded, the caller left or time is up.

        ``fuel`` is the store's remaining fuel as compiled code last wrote it
        back; stopping here records the fuel actually left (see
        :meth:`_stop_at_tick`).
        """
        cpu = time.thread_time()
        previous = self.cpu_started if self.last_tick_cpu is None else self.last_tick_cpu
        self.last_tick_cpu = cpu
        self.fuel_fresh = fuel is not None and fuel != self.fuel_seen
        if self.fuel_fresh:
            self.fuel_seen, self.fuel_seen_since = fuel, previous
        if self.failure is not None:
            self._stop_at_tick(cpu)
            return False
        if self.cancel.is_set():
            self.record(ErrorKind.TIMEOUT, "invocation cancelled: the caller stopped waiting")
        elif time.monotonic() >= self.deadline:
            self.record(ErrorKind.TIMEOUT, self.timeout_message())
        elif self.cpu_slice_s is not None and cpu - self.cpu_started > self.cpu_slice_s:
            self.record(ErrorKind.TIMEOUT, "inline slice used up")
        else:
            return True
        self._stop_at_tick(cpu)
        return False

    def _stop_at_tick(self, cpu: float) -> None:
        """Record the fuel left when an epoch tick stops the guest.

        Compiled code keeps its fuel count in a register and writes it back
        only at calls, returns and ``unreachable``: a call-free loop stopped
        here (or after the trap) shows the count from before the loop, so a one
        second spin reported ~10 k fuel. The count seen at ticks is exact up to
        the last write-back. A count that moved since the previous tick is
        current (the guest writes it back often); one that has not moved since
        an earlier tick belongs to a loop that does not write back, which has
        burnt ``fuel_rate`` per CPU second since the last tick before that
        write-back.
        """
        if self.fuel_left_at_stop is not None:
            return
        if self.fuel_seen is None:  # the fuel could not be read
            self.fuel_left_at_stop = max(
                0, self.limits.fuel - int(self.fuel_rate * (cpu - self.cpu_started))
            )
            return
        tail = 0 if self.fuel_fresh else int(self.fuel_rate * max(0.0, cpu - self.fuel_seen_since))
        self.fuel_left_at_stop = max(0, self.fuel_seen - tail)

    def memory_limit(self) -> int:
        """The linear memory limit, for the memories wasmtime creates for this guest."""
        return self.limits.memory_bytes

    def on_memory_refused(self, requested: int) -> None:
        """A memory of ``requested`` bytes was refused (initial size or memory.grow)."""
        self.memory_refused = max(self.memory_refused, requested)

    def on_stdout(self, data: bytes) -> int:
        """Keep stdout up to the output cap; past it, fail the write and the invocation."""
        if self.stdout_is_log:
            return self.on_stderr(data)
        started = time.perf_counter()
        try:
            if len(self.stdout) + len(data) > self.limits.output_bytes:
                self.record(
                    ErrorKind.OUTPUT_TOO_LARGE,
                    f"output exceeds the limit of {self.limits.output_bytes} bytes",
                )
                return -errno.EFBIG
            self.stdout += data
            return len(data)
        finally:
            self.pace(started)

    def on_stderr(self, data: bytes) -> int:
        """Turn stderr into log lines, one per newline (always accepted, capped as logs)."""
        started = time.perf_counter()
        try:
            self.stderr_pending += data
            while (cut := self.stderr_pending.find(b"\n")) >= 0:
                line = bytes(self.stderr_pending[:cut])
                del self.stderr_pending[: cut + 1]
                self.log(LogLevel.INFO, line)
            if len(self.stderr_pending) > _MAX_PENDING_STDERR:
                self.flush_stderr()
            return len(data)
        finally:
            self.pace(started)

    def flush_stderr(self) -> None:
        """Log a last stderr line that had no newline."""
        if self.stderr_pending:
            line = bytes(self.stderr_pending)
            self.stderr_pending.clear()
            self.log(LogLevel.INFO, line)

    # -- logs ---------------------------------------------------------------
    def log_budget(self) -> int:
        """Log bytes the guest may still write."""
        return max(0, self.limits.log_bytes - self.log_bytes)

    def truncate_logs(self) -> None:
        """Drop further lines and leave one marker saying so."""
        if not self.logs_truncated:
            self.logs_truncated = True
            if self.include_logs:
                self.logs.append(LogLine(LogLevel.WARN, TRUNCATION_MARKER))

    def log_fields(self) -> dict[str, object]:
        """The bound log fields of the caller, read once (most calls never log)."""
        if self._log_fields is None:
            self._log_fields = self.log_context.run(bound_fields)
        return self._log_fields

    def log(self, level: LogLevel, raw: bytes) -> None:
        """Keep one guest line if the budget allows and emit it as a structured log."""
        if (
            self.reads_out_of_memory
            and not self.out_of_memory_said
            and _OUT_OF_MEMORY.search(raw, 0, 256)
        ):
            self.out_of_memory_said = True
        if self.logs_truncated or len(raw) > self.log_budget():
            self.truncate_logs()
            return
        self.log_bytes += len(raw)
        message = raw.decode("utf-8", errors="replace")
        if self.include_logs:
            self.logs.append(LogLine(level, message))
        fields = {
            **self.log_fields(),
            "guest": True,
            "tenant": self.context.tenant_id,
            "organization": self.context.organization_id,
            "request_id": self.context.request_id,
        }
        getattr(_log, _LOG_METHODS[level])("guest_log", guest_message=message, **fields)

    def timeout_message(self) -> str:
        return f"deadline exceeded (limit {self.limits.timeout_ms} ms)"


_current = threading.local()


class activate:
    """Make ``state`` the one host functions on this thread serve (nesting restores).

    A class, not a generator context manager: a third of the cost, once per call.
    """

    __slots__ = ("_previous", "_state")

    def __init__(self, state: InvocationState) -> None:
        self._state = state
        self._previous: InvocationState | None = None

    def __enter__(self) -> None:
        self._previous = getattr(_current, "state", None)
        _current.state = self._state

    def __exit__(self, *_: object) -> None:
        _current.state = self._previous


def current() -> InvocationState | None:
    """The invocation running wasm on this thread, if any."""
    state: InvocationState | None = getattr(_current, "state", None)
    return state
