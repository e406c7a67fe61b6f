"""Which promotion events this process has already taken, for as long as they are fresh.

An event is accepted only while its ``time`` is within the window of now, so an
id needs remembering only until ``time + window``: after that the timestamp
check refuses a replay by itself. Memory is bounded by ``capacity``; when every
slot holds a live id the one closest to expiry is dropped (and logged), which
can only re-admit an event the sender signed, whose effect is one storage read.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

from app.telemetry import get_logger

__all__ = ["EventMemory"]

_log = get_logger("app.catalog.events")


class EventMemory:
    """Event ids (with their source) seen within the window; one per process."""

    def __init__(
        self, window_s: float, capacity: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._window = window_s
        self._capacity = capacity
        self._clock = clock
        self._expiry: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []

    def __len__(self) -> int:
        self._purge(self._clock())
        return len(self._expiry)

    def claim(self, source: str, event_id: str, event_time: float) -> bool:
        """Remember the event; ``False`` when it was already taken (a replay)."""
        now = self._clock()
        self._purge(now)
        key = (source, event_id)
        if key in self._expiry:
            return False
        while len(self._expiry) >= self._capacity:
            expiry, evicted = heapq.heappop(self._heap)
            if self._expiry.get(evicted) == expiry:
                del self._expiry[evicted]
                _log.warning("promotion.memory_full", capacity=self._capacity)
        expiry = event_time + self._window  # fresh events only: later than now
        self._expiry[key] = expiry
        heapq.heappush(self._heap, (expiry, key))
        if len(self._heap) > 2 * self._capacity:  # entries of forgotten ids
            self._heap = [(e, k) for k, e in self._expiry.items()]
            heapq.heapify(self._heap)
        return True

    def forget(self, source: str, event_id: str) -> None:
        """The event had no effect (storage was down): its retry must be processed."""
        self._expiry.pop((source, event_id), None)

    def _purge(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            expiry, key = heapq.heappop(self._heap)
            if self._expiry.get(key) == expiry:
                del self._expiry[key]
