"""Small thread pools with bounded admission, between the event loop and wasm.

Wasm runs synchronously, so it runs on worker threads. Admission is bounded
(threads + waiting slots, per lane) so an overloaded process answers
OVERLOADED at once instead of queueing work its callers will have given up on.
Each job gets a ``threading.Event`` that is set when the awaiting coroutine is
cancelled, so the guest stops instead of burning a thread for a caller that
left.

**Lanes.** One FIFO shared by every guest lets a few hostile callers (an
infinite loop, a host call to a hanging service: each holds a thread for its
whole deadline) fill the threads and the queue, and a ~100 µs call then waits
seconds behind them or is refused (measured by ``make reliability``: good
traffic's p95 went from ~4 ms to seconds). So guests run in three lanes, each
with its own threads and admission bound, chosen by
:class:`~app.sandbox._fastpath.FastPath`:

* ``short``: pure guests known to be quick (``executor_threads``);
* ``long``: guests that compute long (``executor_long_threads``, default 1).
  Its threads run at a lower CPU priority (nice +10, Linux) and there are
  fewer of them than cores, so guests burning CPU until their deadline never
  hold every core: with two such threads on this 2-core machine good
  traffic's p95 rose 2.5x under a looping tenant, with one 1.6x;
* ``io``: guests that may wait on a host call or a sleep
  (``executor_io_threads``, default 8, also at lower priority): they mostly
  wait, so more threads cost little, and a hanging upstream cannot queue
  them behind each other or behind computations.

**Tenants.** In the ``io`` and ``long`` lanes one tenant may have at most
half the lane's threads' worth of jobs handed to its pool (at least one);
its further jobs wait in a queue of its own and are handed over as its
earlier ones finish. So a tenant whose upstream hangs holds at most half the
io threads, and another tenant's call is never queued behind all of that
tenant's waiting calls. The ``short`` lane's jobs are quick and have no cap.

**Admission by work in the short lane.** Counting calls refused cheap work:
128 echo calls in flight (~100 µs each) overflowed the 64 waiting slots and 65
were answered OVERLOADED while the whole queue held ~13 ms of CPU. So the
short lane counts *estimated CPU*: a call takes ``cost / slot_us`` of a slot
(its module's average CPU per run, from the fast path's statistics; at least
a hundredth of a slot), a call of unknown cost a whole one, and the lane is
full when its threads + queue slots are. A burst of cheap calls then waits
briefly; calls costing a slot or more are admitted exactly as before; and
``short_max`` bounds how many calls the lane holds however cheap they are.
The ``long`` and ``io`` lanes hold guests that compute or wait for long: each
of their calls takes a whole slot, so they are still refused at once when
their lane is full.

**Fair admission.** Capping threads alone left the waiting slots to whoever
came first: 76 slow host-calling requests from one tenant filled the io lane's
threads *and* its 64 waiting slots, and another tenant's call was refused.
So in every lane one tenant may also hold at most ``executor_tenant_share`` of
the lane's admission slots (threads + waiting, at least one); above that its
calls are refused at once with ``OVERLOADED`` and a retry hint, while the
rest of the lane stays free for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError as FutureCancelled
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal, TypeVar

from app.errors import ErrorKind, InvocationFailure
from app.settings import ExecutorConfig
from app.telemetry import Family, single

__all__ = [
    "LONG_LANE_NICE",
    "OVERLOADED_RETRY_AFTER_MS",
    "Executor",
    "Lane",
]

T = TypeVar("T")
Lane = Literal["short", "long", "io"]
LONG_LANE_NICE = 10
"""How much lower the ``long`` lane's CPU priority is (``nice`` increment)."""
OVERLOADED_RETRY_AFTER_MS = 1000
"""The retry hint of an OVERLOADED refusal: about how long a slot takes to free."""


def _lower_priority() -> None:
    """Initializer of a ``long``/``io`` lane thread: nice +10 for this thread only (Linux)."""
    # Not Linux, or not permitted: the lane runs at normal priority.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LONG_LANE_NICE)


_UNIT = 1000
"""One admission slot, in the integer units lanes count load in."""
_MIN_UNITS = 10
"""The least a call weighs in the short lane: a hundredth of a slot."""


class _Job:
    """A submitted job: its future, how to run it, its weight, whether its pool has it yet."""

    __slots__ = ("future", "handed", "run", "tenant", "units")

    def __init__(
        self, future: Future[object], run: Callable[[], None], tenant: str, units: int
    ) -> None:
        self.future = future
        self.run = run
        self.tenant = tenant
        self.units = units
        self.handed = False


class _LanePool:
    """One lane: a thread pool, its admission count and its per-tenant hand-off."""

    def __init__(
        self,
        name: Lane,
        threads: int,
        capacity: int,
        tenant_share: float,
        *,
        slot_us: float | None = None,
        max_admitted: int | None = None,
    ) -> None:
        self.name = name
        self.threads = threads
        self.capacity = capacity
        self.admitted = 0
        """Calls admitted (running plus waiting)."""
        self.load = 0
        """Their weight, in ``_UNIT`` per slot; full at ``capacity`` slots."""
        self.slot_us = slot_us
        """Weigh calls by estimated CPU (the short lane); ``None``: a slot each."""
        self.max_admitted = max_admitted or capacity
        # Admission slots (threads + waiting) one tenant may hold in this lane.
        self.tenant_admit_cap = max(1, int(capacity * tenant_share))
        self.tenant_count_cap = max(1, int(self.max_admitted * tenant_share))
        self.load_by: Counter[str] = Counter()
        self.count_by: Counter[str] = Counter()
        # Jobs one tenant may have in the pool (running or in its FIFO); None: no cap.
        self.tenant_cap = None if name == "short" else max(1, threads // 2)
        self.handed: Counter[str] = Counter()
        self.parked: dict[str, deque[_Job]] = {}
        self.pool = ThreadPoolExecutor(
            max_workers=threads,
            thread_name_prefix=f"wasm-{name}",
            initializer=None if name == "short" else _lower_priority,
        )

    def place(self, job: _Job) -> None:
        """Hand ``job`` to the pool, or park it behind its tenant's (caller holds the lock)."""
        if self.tenant_cap is None or self.handed[job.tenant] < self.tenant_cap:
            self.hand(job)
        else:
            self.parked.setdefault(job.tenant, deque()).append(job)

    def units(self, cost_us: float | None) -> int:
        """What one call weighs here: a slot, or in the short lane its share of one."""
        if self.slot_us is None or cost_us is None:
            return _UNIT
        return max(_MIN_UNITS, min(_UNIT, int(cost_us / self.slot_us * _UNIT)))

    def release(self, tenant: str, units: int) -> None:
        """A call of ``tenant`` weighing ``units`` left the lane (lock held)."""
        self.admitted -= 1
        self.load -= units
        self.load_by[tenant] -= units
        self.count_by[tenant] -= 1
        if self.count_by[tenant] <= 0:
            del self.count_by[tenant], self.load_by[tenant]

    def hand(self, job: _Job) -> None:
        job.handed = True
        self.handed[job.tenant] += 1
        self.pool.submit(job.run)

    def finished(self, job: _Job) -> None:
        """``job`` is done (ran, failed or was cancelled): free its slots (lock held)."""
        self.release(job.tenant, job.units)
        queue = self.parked.get(job.tenant)
        if not job.handed:
            if queue is not None:  # cancelled while parked: nothing to hand on
                with contextlib.suppress(ValueError):
                    queue.remove(job)
                if not queue:
                    del self.parked[job.tenant]
            return
        self.handed[job.tenant] -= 1
        if not self.handed[job.tenant]:
            del self.handed[job.tenant]
        while queue:
            waiting = queue.popleft()
            if not waiting.future.done():
                self.hand(waiting)
                break
        if queue is not None and not queue:
            del self.parked[job.tenant]


class Executor:
    """Runs ``fn(cancel)`` on a worker thread of a lane; at most ``threads + queue``
    jobs admitted per lane."""

    def __init__(self, config: ExecutorConfig) -> None:
        threads: dict[Lane, int] = {
            "short": config.threads,
            "long": config.long_threads,
            "io": config.io_threads,
        }
        self._lanes = {
            name: _LanePool(
                name,
                count,
                count + config.queue,
                config.tenant_share,
                slot_us=config.slot_us if name == "short" else None,
                max_admitted=max(config.short_max, count + config.queue)
                if name == "short"
                else None,
            )
            for name, count in threads.items()
        }
        self._lock = threading.Lock()
        self.rejections = 0
        self._running: set[threading.Event] = set()
        self._pending: set[_Job] = set()  # submitted, not done
        self._closed = False

    @property
    def in_flight(self) -> int:
        """Jobs admitted and not finished (running plus waiting): the queue-depth gauge."""
        return sum(lane.admitted for lane in self._lanes.values())

    def metric_families(self) -> Iterable[Family]:
        yield single(
            "counter", "executor_rejections", "Calls refused as OVERLOADED.", self.rejections
        )
        yield single(
            "gauge",
            "executor_queue_depth",
            "Invocations admitted to the sandbox pool (running plus waiting).",
            self.in_flight,
        )

    def _admit(self, lane: _LanePool, tenant: str, units: int) -> None:
        with self._lock:
            if self._closed:
                raise InvocationFailure(ErrorKind.UNAVAILABLE, "the runtime is shutting down")
            if lane.load + units > lane.capacity * _UNIT or lane.admitted >= lane.max_admitted:
                self.rejections += 1
                raise InvocationFailure(
                    ErrorKind.OVERLOADED,
                    f"all {lane.threads} sandbox threads for {lane.name} guests are busy"
                    " and their queue is full",
                    retry_after_ms=OVERLOADED_RETRY_AFTER_MS,
                )
            if (
                lane.load_by[tenant] + units > lane.tenant_admit_cap * _UNIT
                or lane.count_by[tenant] >= lane.tenant_count_cap
            ):
                self.rejections += 1
                raise InvocationFailure(
                    ErrorKind.OVERLOADED,
                    f"this tenant already holds its share of the {lane.name} guests' slots"
                    f" ({lane.count_by[tenant]} calls running or waiting); retry later",
                    retry_after_ms=OVERLOADED_RETRY_AFTER_MS,
                )
            lane.admitted += 1
            lane.load += units
            lane.load_by[tenant] += units
            lane.count_by[tenant] += 1

    async def submit(
        self,
        fn: Callable[[threading.Event], T],
        *,
        deadline: float | None,
        lane: Lane = "short",
        tenant: str = "",
        cost_us: float | None = None,
    ) -> tuple[T, int]:
        """Run ``fn(cancel)`` on a worker of ``lane``; returns its result and the µs it waited.

        Raises OVERLOADED at once when the lane has no slot free, and TIMEOUT if
        ``deadline`` (``time.monotonic()``) passes before a thread picks it up.
        If the awaiting task is cancelled, ``cancel`` is set for ``fn`` to stop.
        ``tenant`` is whose job it is (see **Tenants** above); ``cost_us`` its
        estimated CPU, which is what it weighs in the short lane (see
        **Admission by work**; ``None``: unknown, a whole slot).
        """
        pool = self._lanes[lane]
        units = pool.units(cost_us)
        self._admit(pool, tenant, units)
        cancel = threading.Event()
        queued_at = time.monotonic()
        waited_us = 0
        ctx = contextvars.copy_context()  # carries structlog's bound request fields
        future: Future[T] = Future()

        def job() -> T:
            nonlocal waited_us
            waited_us = int((time.monotonic() - queued_at) * 1_000_000)
            if deadline is not None and time.monotonic() >= deadline:
                raise InvocationFailure(
                    ErrorKind.TIMEOUT, "deadline passed while queued", caller_side=True
                )
            with self._lock:
                self._running.add(cancel)
            try:
                return ctx.run(fn, cancel)
            finally:
                with self._lock:
                    self._running.discard(cancel)

        def run() -> None:  # on a pool thread
            if not future.set_running_or_notify_cancel():
                return  # cancelled while it waited
            try:
                result = job()
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting caller
                future.set_exception(exc)
            else:
                future.set_result(result)

        entry = _Job(future, run, tenant, units)  # type: ignore[arg-type]

        def done(_: object) -> None:
            with self._lock:
                self._pending.discard(entry)
                pool.finished(entry)

        with self._lock:
            if self._closed:
                pool.release(tenant, units)
                raise InvocationFailure(ErrorKind.UNAVAILABLE, "the runtime is shutting down")
            self._pending.add(entry)
            pool.place(entry)
        future.add_done_callback(done)
        try:
            result = await self._wait(future, deadline)
        except asyncio.CancelledError:
            cancel.set()
            future.cancel()
            raise
        return result, waited_us

    @staticmethod
    async def _wait(future: Future[T], deadline: float | None) -> T:
        """Await the job; a job still queued at ``deadline`` is dropped as TIMEOUT.

        A loop timer does the expiry (cheaper than ``asyncio.wait`` on every
        call); a job already running enforces the same deadline itself.
        """
        wrapped = asyncio.wrap_future(future)
        expired = False
        timer: asyncio.TimerHandle | None = None
        if deadline is not None:

            def expire() -> None:
                nonlocal expired
                expired = future.cancel()  # succeeds only while still queued

            loop = asyncio.get_running_loop()
            timer = loop.call_at(loop.time() + max(0.0, deadline - time.monotonic()), expire)
        try:
            return await wrapped
        except asyncio.CancelledError:
            if expired:
                raise InvocationFailure(
                    ErrorKind.TIMEOUT, "deadline passed while queued", caller_side=True
                ) from None
            task = asyncio.current_task()
            if future.cancelled() and not (task is not None and task.cancelling()):
                # The pool dropped the job (shutdown), not our caller leaving.
                raise InvocationFailure(
                    ErrorKind.UNAVAILABLE, "the runtime is shutting down"
                ) from None
            raise
        except FutureCancelled:
            raise InvocationFailure(ErrorKind.UNAVAILABLE, "the runtime is shutting down") from None
        finally:
            if timer is not None:
                timer.cancel()

    def close(self, *, wait: bool = True) -> None:
        """Refuse new jobs, drop queued ones and tell running guests to stop."""
        with self._lock:
            self._closed = True
            running = list(self._running)
            pending = list(self._pending)
        for cancel in running:
            cancel.set()
        for entry in pending:
            entry.future.cancel()  # the queued and parked ones: their callers see UNAVAILABLE
        for lane in self._lanes.values():
            lane.pool.shutdown(wait=wait, cancel_futures=True)
