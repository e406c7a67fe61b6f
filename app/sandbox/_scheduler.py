"""Where one prepared invocation runs: inline on the event loop, or on a lane's thread.

The choice is made in one place, from what the module's runs cost before
(:class:`~app.sandbox._fastpath.FastPath`): a short pure guest runs inline under
a CPU slice, because a thread hop costs more than it does; if it overruns the
slice it is re-run on the pool with its full budget (safe: it has no side
effects outside its fresh Store). Everything else goes to an executor lane
(:class:`~app.sandbox._executor.Executor`), which may refuse it at once as
``OVERLOADED``. Every run, inline or pooled, failed or not, feeds the history
that makes the next choice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

from opentelemetry import trace

from app.errors import ErrorKind, InvocationFailure
from app.invocation import ExecutionContext, Outcome
from app.sandbox._engine import CompiledModule, SandboxEngine
from app.sandbox._executor import Executor
from app.sandbox._fastpath import FastPath
from app.sandbox._host_bridge import HostBridge
from app.sandbox._limits import Limits
from app.sandbox._runner import run
from app.telemetry import NO_SPAN, tracer

__all__ = ["HandOff", "Job", "Scheduler"]

T = TypeVar("T")
_NOT_CANCELLABLE = threading.Event()
"""The cancel event of inline runs, never set: an inline run holds the loop, so no
caller can leave during it (its slice ends it). One shared event saves making a
``threading.Event`` (a Condition and a lock) per call."""


class HandOff(Protocol):
    """How the caller waits for a pooled run (e.g. giving up its tenant's turn meanwhile)."""

    def __call__(self, waiting: Awaitable[T], /) -> Awaitable[T]: ...


def _as_is(waiting: Awaitable[T]) -> Awaitable[T]:
    return waiting


@dataclass(slots=True)
class Job:
    """One invocation, ready to run: everything :func:`~app.sandbox._runner.run` needs."""

    compiled: CompiledModule
    input: bytes
    limits: Limits
    context: ExecutionContext
    deadline: float
    """``time.monotonic()`` at which the guest stops, whatever runs it."""
    include_logs: bool
    bridge: HostBridge | None
    real_clock_and_random: bool
    config_json: bytes
    may_call_host: bool = True
    """The definition grants host calls (a component without them cannot wait)."""
    background: bool = False
    """Nobody waits for it (a shadow run): never inline, always the low-priority lane."""
    cpu_us: float = 0.0
    """This thread's CPU time in the last run of the job, failed or not."""


class Scheduler:
    """Runs jobs inline or on the executor's lanes, and learns from every run."""

    def __init__(
        self,
        engine: SandboxEngine,
        executor: Executor,
        fastpath: FastPath,
        *,
        hand_off: HandOff = _as_is,
        tracing: bool = True,
    ) -> None:
        self.engine = engine
        self.executor = executor
        self.fastpath = fastpath
        self._hand_off = hand_off
        self._tracing = tracing
        """False when no provider records spans: the current span is not even asked."""

    async def run(self, job: Job) -> Outcome:
        """The outcome, with ``metrics.queue_us`` set; raises ``InvocationFailure``."""
        recording = self._tracing and trace.get_current_span().is_recording()
        with tracer().start_as_current_span("sandbox.run") if recording else NO_SPAN as span:
            inlined = None if job.background else self._inline(job)
            if inlined is not None:
                outcome, queue_us = inlined, 0
            else:
                outcome, queue_us = await self._hand_off(  # a lane's thread: its own shares
                    self.executor.submit(
                        partial(self._execute, job),
                        deadline=job.deadline,
                        lane="io"  # nice +10: background work yields the cores to callers
                        if job.background
                        else self.fastpath.lane(job.compiled, may_call_host=job.may_call_host),
                        tenant=job.context.tenant_id,
                        cost_us=job.compiled.runs.cpu_us,
                    )
                )
            if recording:
                span.set_attributes(
                    {"ameide.inline": inlined is not None, "ameide.queue_us": queue_us}
                )
        outcome.metrics.queue_us = queue_us
        return outcome

    def _inline(self, job: Job) -> Outcome | None:
        """The outcome of a fast-path run, or ``None`` to use the pool (see FastPath)."""
        fastpath = self.fastpath
        compiled = job.compiled
        if not fastpath.eligible(compiled):
            return None
        try:
            # The slice is CPU time: a fast guest pre-empted or waiting for the GIL on
            # a busy machine is not stopped (its re-run on the pool would cost more
            # and wait behind others, which made latency collapse under load).
            outcome = self._execute(job, _NOT_CANCELLABLE, fastpath.slice_s)
        except InvocationFailure as failure:
            if failure.kind is ErrorKind.TIMEOUT and time.monotonic() < job.deadline:
                # Over the slice: re-run on the pool with the full budget; a guest
                # that really used the CPU goes there for good.
                if job.cpu_us > fastpath.threshold_us:
                    fastpath.overran(compiled)
                return None
            raise
        fastpath.inline_runs += 1
        return outcome

    def _execute(
        self, job: Job, cancel: threading.Event, cpu_slice_s: float | None = None
    ) -> Outcome:
        # CPU time: waiting for the GIL is not the guest's cost. One clock read
        # each side (a system call each) serves the runner, the fast path and _inline.
        began = time.thread_time()
        try:
            return run(
                self.engine,
                job.compiled,
                job.input,
                job.limits,
                context=job.context,
                deadline=job.deadline,
                include_logs=job.include_logs,
                host_bridge=job.bridge,
                cancel=cancel,
                real_clock_and_random=job.real_clock_and_random,
                cpu_slice_s=cpu_slice_s,
                config_json=job.config_json,
                cpu_started=began,
            )
        finally:
            # Failed runs count too: a guest that always ends at its deadline is long.
            job.cpu_us = (time.thread_time() - began) * 1e6
            self.fastpath.observe(job.compiled, job.cpu_us)
