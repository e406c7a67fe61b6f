"""A per-process budget of successful invocation log lines.

At thousands of calls a second one JSON line per call costs the service more
CPU than a small guest does, and says nothing a counter does not. Successes
are logged up to ``rate_per_s`` a second (a token bucket holding one second's
worth); past that they are counted instead, and the next line written says
how many were left out before it (``unlogged``). Failures are always logged.
Metrics count every call either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["LogSampler"]


class LogSampler:
    """Admits at most ``rate_per_s`` lines a second on average; ``0`` admits all."""

    __slots__ = ("_capacity", "_clock", "_rate", "_stamp", "_tokens", "unlogged")

    def __init__(self, rate_per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate_per_s
        self._capacity = max(1.0, rate_per_s)  # one second's worth, and at least one line
        self._clock = clock
        self._tokens = self._capacity
        self._stamp = clock()
        self.unlogged = 0
        """Successes left out since the last line written."""

    def admit(self) -> bool:
        """Whether to write this success's line; if not, it is counted in ``unlogged``."""
        if self._rate <= 0:
            return True
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.unlogged += 1
        return False

    def take_unlogged(self) -> int:
        """The count to report on the line being written, reset to zero."""
        count, self.unlogged = self.unlogged, 0
        return count
