"""One process-wide schedule for host-function calls of guests past their allowance.

Every host function is Python, so every call takes the GIL the event loop
needs. Per-invocation pacing (``InvocationState.pace``) bounds each guest to a
fifth of the GIL, but a flooding guest still re-took it after every ~100 µs
pause: ~9,000 acquisitions a second per thread, each one able to make the
event loop give the GIL up mid-request and wait to get it back (`make
reliability`: good traffic's p95 20-30x its quiet p95 with a log flood among
the abusers). :class:`Pacer` hands out slots at most ``rate`` a second to all
paced calls of the process together: however many threads flood, the event
loop sees at most ``rate`` such acquisitions a second. A guest waits for its
slot with the GIL released, within its own deadline; calls inside the
allowance never wait here.
"""

from __future__ import annotations

import threading
import time

__all__ = ["Pacer"]


class Pacer:
    """Slots at most ``rate`` per second, shared by every paced host-function call."""

    def __init__(self, rate: float) -> None:
        self.interval_s = 1.0 / rate if rate > 0 else 0.0
        self._lock = threading.Lock()
        self._next = 0.0
        self.slots = 0
        """Slots handed out (paced calls let through), for tests and metrics."""

    def reserve(self, deadline: float) -> float | None:
        """Reserve the next slot; seconds to wait (with the GIL released) until it.

        ``None`` if the next slot comes at or after ``deadline`` (``time.monotonic()``):
        nothing is reserved, and the caller ends the guest instead of waiting, so
        slots are never handed to guests that cannot use them.
        """
        now = time.monotonic()
        if not self.interval_s:
            return 0.0
        with self._lock:
            slot = max(now, self._next)
            if slot >= deadline:
                return None
            self._next = slot + self.interval_s
            self.slots += 1
        return slot - now
