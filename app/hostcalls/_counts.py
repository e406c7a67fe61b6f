"""Host calls counted by (service, method, outcome) for ``/metrics``, with bounded labels."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from app.telemetry import Family

__all__ = ["INTERNAL", "OK", "OTHER", "OutcomeCounter"]

OK = "ok"
"""Outcome label of a call that reached the service and got an answer below 500."""
INTERNAL = "internal"
"""Outcome label of a call that failed inside the runtime (a bug)."""
OTHER = "_other"
"""Metric label of a service or method the configuration does not name."""


class OutcomeCounter:
    """Thread-safe counts of host calls by (service, method, outcome), for metrics.

    The bridge only passes labels the configuration names (see
    :meth:`~app.hostcalls.InvocationBridge.labels`); the cap on distinct pairs is a
    backstop for wildcard allowlists, and calls beyond it are counted under
    ``("_other", "_other")``.
    """

    def __init__(self, max_series: int = 512) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = {}
        self._pairs: set[tuple[str, str]] = set()
        self._max_series = max_series

    def add(self, service: str, method: str, outcome: str) -> None:
        with self._lock:
            pair = (service, method)
            if pair not in self._pairs:
                if len(self._pairs) >= self._max_series:
                    service, method = OTHER, OTHER
                else:
                    self._pairs.add(pair)
            key = (service, method, outcome)
            self._counts[key] = self._counts.get(key, 0) + 1

    def snapshot(self) -> dict[tuple[str, str, str], int]:
        with self._lock:
            return dict(self._counts)

    def metric_families(self) -> Iterable[Family]:
        yield Family(
            "counter",
            "host_calls",
            "Guest host calls by target and outcome.",
            [(key, float(n)) for key, n in self.snapshot().items()],
            ("service", "method", "outcome"),
        )
