"""A small thread pool with bounded admission, between the event loop and wasm.

Wasm runs synchronously, so it runs on worker threads. Admission is bounded
(threads + waiting slots) so an overloaded process answers OVERLOADED at once
instead of queueing work its callers will have given up on. Each job gets a
``threading.Event`` that is set when the awaiting coroutine is cancelled, so
the guest stops instead of burning a thread for a caller that left.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError as FutureCancelled
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from app.errors import ErrorKind, InvocationFailure
from app.settings import Settings

T = TypeVar("T")


class Executor:
    """Runs ``fn(cancel)`` on a worker thread; at most ``threads + queue`` jobs admitted."""

    def __init__(self, settings: Settings) -> None:
        self.threads = settings.executor_threads
        self.capacity = settings.executor_threads + settings.executor_queue
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="wasm")
        self._lock = threading.Lock()
        self._admitted = 0
        self.rejections = 0
        self._running: set[threading.Event] = set()
        self._closed = False

    @property
    def in_flight(self) -> int:
        """Jobs admitted and not finished (running plus waiting): the queue-depth gauge."""
        return self._admitted

    def _admit(self) -> None:
        with self._lock:
            if self._closed:
                raise InvocationFailure(ErrorKind.UNAVAILABLE, "the runtime is shutting down")
            if self._admitted >= self.capacity:
                self.rejections += 1
                raise InvocationFailure(
                    ErrorKind.OVERLOADED,
                    f"all {self.threads} sandbox threads are busy and the queue is full",
                )
            self._admitted += 1

    def _release(self, _future: object = None) -> None:
        with self._lock:
            self._admitted -= 1

    async def submit(
        self, fn: Callable[[threading.Event], T], *, deadline: float | None
    ) -> tuple[T, int]:
        """Run ``fn(cancel)`` on a worker; returns its result and the µs it waited.

        Raises OVERLOADED at once when no slot is free, and TIMEOUT if
        ``deadline`` (``time.monotonic()``) passes before a thread picks it up.
        If the awaiting task is cancelled, ``cancel`` is set for ``fn`` to stop.
        """
        self._admit()
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
            future = self._pool.submit(job)
        except RuntimeError:  # the pool shut down between _admit and here
            self._release()
            raise InvocationFailure(ErrorKind.UNAVAILABLE, "the runtime is shutting down") from None
        future.add_done_callback(self._release)
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
        self._pool.shutdown(wait=wait, cancel_futures=True)
