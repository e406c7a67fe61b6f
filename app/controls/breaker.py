"""Circuit breakers per (extension, version).

A version that keeps failing (traps, timeouts, limit hits) burns sandbox
threads that healthy extensions need. When its failure rate over a sliding
window passes the threshold, with at least a minimum number of calls, the
breaker opens and calls fail fast with ``unavailable``; after a cool-down one
probe is let through, and its result closes or re-opens the breaker.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum

from app.errors import ErrorKind

# Failures the extension is responsible for; caller mistakes and our own
# capacity limits do not count against it.
GUEST_FAULTS = frozenset(
    {
        ErrorKind.TRAP,
        ErrorKind.TIMEOUT,
        ErrorKind.FUEL_EXHAUSTED,
        ErrorKind.MEMORY_LIMIT,
        ErrorKind.STACK_OVERFLOW,
        ErrorKind.OUTPUT_TOO_LARGE,
        ErrorKind.INVALID_OUTPUT,
        ErrorKind.HOST_CALL_FAILED,
    }
)


class BreakerState(IntEnum):
    """Values match the admin proto's BreakerState."""

    CLOSED = 1
    OPEN = 2
    HALF_OPEN = 3


@dataclass(slots=True)
class _Breaker:
    outcomes: deque[tuple[float, bool]] = field(default_factory=lambda: deque(maxlen=2048))
    failures: int = 0
    """Failures among ``outcomes``, kept in step so a call costs O(1)."""
    state: BreakerState = BreakerState.CLOSED
    opened_at: float = 0.0
    probing: bool = False


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    window_s: float = 30.0
    min_calls: int = 10
    failure_rate: float = 0.5
    cooldown_s: float = 15.0


class Breakers:
    """All breakers of this process."""

    def __init__(self, config: BreakerConfig) -> None:
        self._config = config
        self._now = time.monotonic
        self._lock = threading.Lock()
        self._breakers: dict[tuple[str, str], _Breaker] = {}
        self.transitions = 0

    def state(self, extension_id: str, version: str) -> BreakerState | None:
        breaker = self._breakers.get((extension_id, version))
        return breaker.state if breaker else None

    def states(self) -> dict[tuple[str, str], BreakerState]:
        with self._lock:
            return {key: b.state for key, b in self._breakers.items()}

    def allow(self, extension_id: str, version: str) -> bool:
        """Whether a call may run now; in half-open only one probe at a time."""
        with self._lock:
            breaker = self._breakers.get((extension_id, version))
            if breaker is None or breaker.state is BreakerState.CLOSED:
                return True
            if breaker.state is BreakerState.OPEN:
                if self._now() - breaker.opened_at < self._config.cooldown_s:
                    return False
                breaker.state = BreakerState.HALF_OPEN
                self.transitions += 1
            if breaker.probing:
                return False
            breaker.probing = True
            return True

    def record(self, extension_id: str, version: str, failed: bool) -> None:
        now = self._now()
        config = self._config
        with self._lock:
            breaker = self._breakers.setdefault((extension_id, version), _Breaker())
            if breaker.state is BreakerState.HALF_OPEN:
                breaker.probing = False
                breaker.outcomes.clear()
                breaker.failures = 0
                if failed:
                    breaker.state, breaker.opened_at = BreakerState.OPEN, now
                else:
                    breaker.state = BreakerState.CLOSED
                self.transitions += 1
                return
            outcomes = breaker.outcomes
            if len(outcomes) == outcomes.maxlen and outcomes[0][1]:
                breaker.failures -= 1  # the append below pushes it out
            outcomes.append((now, failed))
            breaker.failures += failed
            while outcomes and outcomes[0][0] < now - config.window_s:
                breaker.failures -= outcomes.popleft()[1]
            total = len(outcomes)
            failures = breaker.failures
            if (
                breaker.state is BreakerState.CLOSED
                and total >= config.min_calls
                and failures / total >= config.failure_rate
            ):
                breaker.state, breaker.opened_at = BreakerState.OPEN, now
                self.transitions += 1
