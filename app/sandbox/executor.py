"""Two small thread pools with bounded admission, between the event loop and wasm.

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
:class:`~app.sandbox.fastpath.FastPath`:

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
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError as FutureCancelled
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal, TypeVar

from app.errors import ErrorKind, InvocationFailure
from app.settings import Settings

T = TypeVar("T")
Lane = Literal["short", "long", "io"]
LONG_LANE_NICE = 10
"""How much lower the ``long`` lane's CPU priority is (``nice`` increment)."""


def _lower_priority() -> None:
    """Initializer of a ``long``/``io`` lane thread: nice +10 for this thread only (Linux)."""
    # Not Linux, or not permitted: the lane runs at normal priority.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LONG_LANE_NICE)


class _LanePool:
    """One lane: a thread pool and its admission count."""

    def __init__(self, name: Lane, threads: int, capacity: int) -> None:
        self.name = name
        self.threads = threads
        self.capacity = capacity
        self.admitted = 0
        self.pool = ThreadPoolExecutor(
            max_workers=threads,
            thread_name_prefix=f"wasm-{name}",
            initializer=None if name == "short" else _lower_priority,
        )


class Executor:
    """Runs ``fn(cancel)`` on a worker thread of a lane; at most ``threads + queue``
    jobs admitted per lane."""

    def __init__(self, settings: Settings) -> None:
        self.threads = settings.executor_threads
        self.capacity = settings.executor_threads + settings.executor_queue
        threads: dict[Lane, int] = {
            "short": settings.executor_threads,
            "long": settings.executor_long_threads,
            "io": settings.executor_io_threads,
        }
        self._lanes = {
            name: _LanePool(name, count, count + settings.executor_queue)
            for name, count in threads.items()
        }
        self._lock = threading.Lock()
        self.rejections = 0
        self._running: set[threading.Event] = set()
        self._closed = False

    @property
    def in_flight(self) -> int:
        """Jobs admitted and not finished (running plus waiting): the queue-depth gauge."""
        return sum(lane.admitted for lane in self._lanes.values())

    def _admit(self, lane: _LanePool) -> None:
        with self._lock:
            if self._closed:
                raise InvocationFailure(ErrorKind.UNAVAILABLE, "the runtime is shutting down")
            if lane.admitted >= lane.capacity:
                self.rejections += 1
                raise InvocationFailure(
                    ErrorKind.OVERLOADED,
                    f"all {lane.threads} sandbox threads for {lane.name} guests are busy"
                    " and their queue is full",
                )
            lane.admitted += 1

    def _release(self, lane: _LanePool) -> None:
        with self._lock:
            lane.admitted -= 1

    async def submit(
        self,
        fn: Callable[[threading.Event], T],
        *,
        deadline: float | None,
        lane: Lane = "short",
    ) -> tuple[T, int]:
        """Run ``fn(cancel)`` on a worker of ``lane``; returns its result and the µs it waited.

        Raises OVERLOADED at once when the lane has no slot free, and TIMEOUT if
        ``deadline`` (``time.monotonic()``) passes before a thread picks it up.
        If the awaiting task is cancelled, ``cancel`` is set for ``fn`` to stop.
        """
        pool = self._lanes[lane]
        self._admit(pool)
        cancel = threading.Event()
        queued_at = time.monotonic()
        waited_us = 0
        ctx = contextvars.copy_context()  # carries structlog's bound request fields

        def job() -> T:
            nonlocal waited_us
            waited_us = int((time.monotonic() - queued_at) * 1_000_000)
            if deadline is not None and time.monotonic() >= deadline:
                raise InvocationFailure(ErrorKind.TIMEOUT, "deadline passed while queued")
            with self._lock:
                self._running.add(cancel)
            try:
                return ctx.run(fn, cancel)
            finally:
                with self._lock:
                    self._running.discard(cancel)

        try:
            future = pool.pool.submit(job)
        except RuntimeError:  # the pool shut down between _admit and here
            self._release(pool)
            raise InvocationFailure(ErrorKind.UNAVAILABLE, "the runtime is shutting down") from None
        future.add_done_callback(lambda _: self._release(pool))
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
                raise InvocationFailure(ErrorKind.TIMEOUT, "deadline passed while queued") from None
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
        for cancel in running:
            cancel.set()
        for lane in self._lanes.values():
            lane.pool.shutdown(wait=wait, cancel_futures=True)
