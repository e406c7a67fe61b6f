"""One piece of async work per key at a time, shared by everyone who asks meanwhile.

The module store loads a digest once however many first calls want it, and the
JWKS cache fetches once however many unknown key ids arrive together. Both
need the same three things, so both use this: the work runs as its own task
(a caller that goes away does not cancel it for the others), callers wait
through ``asyncio.shield``, and the key is free again the moment the work
settles, success or failure, so the next caller starts afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

__all__ = ["SingleFlight"]

K = TypeVar("K")
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """At most one task per key; every caller for that key shares its result."""

    def __init__(self) -> None:
        self._tasks: dict[K, asyncio.Task[V]] = {}

    def running(self, key: K) -> bool:
        """Whether work for ``key`` is in flight."""
        return key in self._tasks

    def start(self, key: K, work: Callable[[], Coroutine[Any, Any, V]]) -> asyncio.Task[V]:
        """The task for ``key``: the one in flight, else a new one running ``work()``.

        Not awaiting it is allowed (a refresh in the background): its failure is
        retrieved here, so it is never reported as unhandled.
        """
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._tasks[key] = task
            task.add_done_callback(lambda done: self._settled(key, done))
        return task

    async def wait(self, key: K, work: Callable[[], Coroutine[Any, Any, V]]) -> V:
        """Join (or start) the work for ``key`` and return its result."""
        return await asyncio.shield(self.start(key, work))

    def _settled(self, key: K, task: asyncio.Task[V]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled():
            task.exception()  # retrieved, so an unawaited failure is not reported twice
