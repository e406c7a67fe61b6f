"""Circuit breakers per (version, tenant), and per version when many tenants fail.

A version that keeps failing (traps, timeouts, limit hits) burns sandbox
threads that healthy extensions need. When its failure rate over a sliding
window passes the threshold, with at least a minimum number of calls, the
breaker opens and calls fail fast with ``unavailable``; after a cool-down one
probe is let through, and its result closes or re-opens the breaker.

**Only the guilty trip.** Faults are counted per (version, caller's tenant),
so a tenant that feeds a version bad input (or calls it with a deadline too
short to finish) opens only its own breaker; every other tenant keeps being
served. A *bad build* fails for everyone, and then waiting for each tenant to
trip on its own wastes threads: the version-wide breaker opens when, over the
same window, the version's calls from all tenants pass the failure rate with
the minimum number of calls **and** at least ``min_tenants`` distinct tenants
had faults. One tenant alone can never reach that, however many calls it
sends.

Breakers are keyed by ``(owner, extension_id, version)`` so two tenants' own
extensions with the same id never share one. Per-tenant breakers are capped
(least recently used evicted) so a flood of tenants cannot grow memory.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

from app.controls._killswitches import PLATFORM_OWNER
from app.errors import ErrorKind
from app.settings import BreakerConfig
from app.telemetry import Family

__all__ = [
    "GUEST_FAULTS",
    "BreakerConfig",
    "BreakerState",
    "Breakers",
    "Permit",
    "Refusal",
    "VersionKey",
]

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

VersionKey = tuple[str, str, str]
"""``(owner, extension_id, version)``; the owner is ``""`` for platform extensions."""


class BreakerState(IntEnum):
    """Values match the admin proto's BreakerState."""

    CLOSED = 1
    OPEN = 2
    HALF_OPEN = 3


# The dashboard's encoding: 0 closed, 1 half-open, 2 open.
_GAUGE = {BreakerState.CLOSED: 0.0, BreakerState.HALF_OPEN: 1.0, BreakerState.OPEN: 2.0}


@dataclass(slots=True)
class _Breaker:
    outcomes: deque[tuple[float, bool, str]] = field(default_factory=lambda: deque(maxlen=2048))
    failures: int = 0
    """Failures among ``outcomes``, kept in step so a call costs O(1)."""
    state: BreakerState = BreakerState.CLOSED
    opened_at: float = 0.0
    probing: bool = False

    def admit(self, now: float, cooldown_s: float) -> Literal["pass", "probe", "refuse"]:
        """Whether a call may run now; in half-open only one probe at a time."""
        if self.state is BreakerState.CLOSED:
            return "pass"
        if self.state is BreakerState.OPEN:
            if now - self.opened_at < cooldown_s:
                return "refuse"
            self.state = BreakerState.HALF_OPEN
        if self.probing:
            return "refuse"
        self.probing = True
        return "probe"

    def settle_probe(self, now: float, failed: bool) -> None:
        self.probing = False
        self.outcomes.clear()
        self.failures = 0
        if failed:
            self.state, self.opened_at = BreakerState.OPEN, now
        else:
            self.state = BreakerState.CLOSED

    def add(self, now: float, failed: bool, tenant: str, window_s: float) -> None:
        """One outcome into the sliding window."""
        outcomes = self.outcomes
        if len(outcomes) == outcomes.maxlen and outcomes[0][1]:
            self.failures -= 1  # the append below pushes it out
        outcomes.append((now, failed, tenant))
        self.failures += failed
        while outcomes and outcomes[0][0] < now - window_s:
            self.failures -= outcomes.popleft()[1]

    def over_threshold(self, config: BreakerConfig) -> bool:
        total = len(self.outcomes)
        return total >= config.min_calls and self.failures / total >= config.failure_rate

    def failing_tenants(self, enough: int) -> int:
        """Distinct tenants with a fault in the window, counted up to ``enough``."""
        seen: set[str] = set()
        for _, failed, tenant in reversed(self.outcomes):
            if failed:
                seen.add(tenant)
                if len(seen) >= enough:
                    break
        return len(seen)


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to run one call; handed back to :meth:`Breakers.record` with its result."""

    key: VersionKey
    tenant: str
    probe: Literal["", "version", "tenant"] = ""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call may not run: its tenant's breaker, or the whole version's."""

    scope: Literal["tenant", "version"]


class Breakers:
    """All breakers of this process."""

    def __init__(self, config: BreakerConfig) -> None:
        self._config = config
        self._now = time.monotonic
        self._lock = threading.Lock()
        self._versions: dict[VersionKey, _Breaker] = {}
        self._tenants: OrderedDict[tuple[VersionKey, str], _Breaker] = OrderedDict()
        self.transitions = 0

    def state(self, key: VersionKey) -> BreakerState | None:
        """The version-wide breaker's state (``None`` before its first call)."""
        breaker = self._versions.get(key)
        return breaker.state if breaker else None

    def tenant_state(self, key: VersionKey, tenant: str) -> BreakerState | None:
        breaker = self._tenants.get((key, tenant))
        return breaker.state if breaker else None

    def states(self) -> dict[VersionKey, tuple[BreakerState, int]]:
        """``{version: (version-wide state, tenants whose own breaker is not closed)}``."""
        with self._lock:
            open_tenants: dict[VersionKey, int] = {}
            for (key, _), breaker in self._tenants.items():
                if breaker.state is not BreakerState.CLOSED:
                    open_tenants[key] = open_tenants.get(key, 0) + 1
            return {k: (b.state, open_tenants.get(k, 0)) for k, b in self._versions.items()}

    def metric_families(self) -> Iterable[Family]:
        breakers = self.states()
        yield Family(
            "gauge",
            "breaker_state",
            "Version-wide circuit breaker (every tenant): 0 closed, 1 half-open, 2 open.",
            [((o or PLATFORM_OWNER, e, v), _GAUGE[s]) for (o, e, v), (s, _) in breakers.items()],
            ("owner", "extension", "version"),
        )
        yield Family(
            "gauge",
            "breaker_open_tenants",
            "Tenants whose own circuit breaker for the version is open or half-open.",
            [((o or PLATFORM_OWNER, e, v), float(n)) for (o, e, v), (_, n) in breakers.items()],
            ("owner", "extension", "version"),
        )

    def allow(self, key: VersionKey, tenant: str) -> Permit | Refusal:
        """A permit to run, or which breaker refuses the call."""
        now = self._now()
        cooldown = self._config.cooldown_s
        with self._lock:
            version = self._versions.get(key)
            if version is not None and version.state is not BreakerState.CLOSED:
                before = version.state
                verdict = version.admit(now, cooldown)
                self.transitions += version.state is not before
                if verdict == "refuse":
                    return Refusal("version")
                return Permit(key, tenant, "version")
            breaker = self._tenants.get((key, tenant))
            if breaker is None or breaker.state is BreakerState.CLOSED:
                return Permit(key, tenant)
            before = breaker.state
            verdict = breaker.admit(now, cooldown)
            self.transitions += breaker.state is not before
            if verdict == "refuse":
                return Refusal("tenant")
            return Permit(key, tenant, "tenant")

    def record(self, permit: Permit, failed: bool) -> None:
        """The result of a permitted call."""
        now = self._now()
        config = self._config
        key, tenant = permit.key, permit.tenant
        with self._lock:
            version = self._versions.get(key)
            if version is None:
                version = self._versions[key] = _Breaker()
            if permit.probe == "version" and version.state is BreakerState.HALF_OPEN:
                version.settle_probe(now, failed)
                self.transitions += 1
            elif version.state is BreakerState.CLOSED:
                version.add(now, failed, tenant, config.window_s)
                if (
                    failed
                    and version.over_threshold(config)
                    and version.failing_tenants(config.min_tenants) >= config.min_tenants
                ):
                    version.state, version.opened_at = BreakerState.OPEN, now
                    self.transitions += 1
            self._record_tenant(permit, failed, now)

    def _record_tenant(self, permit: Permit, failed: bool, now: float) -> None:
        config = self._config
        slot = (permit.key, permit.tenant)
        breaker = self._tenants.get(slot)
        if breaker is None:
            breaker = self._tenants[slot] = _Breaker()
            while len(self._tenants) > config.max_tenant_breakers:
                self._tenants.popitem(last=False)
        else:
            self._tenants.move_to_end(slot)
        if breaker.state is BreakerState.HALF_OPEN:
            if permit.probe == "tenant":
                breaker.settle_probe(now, failed)
                self.transitions += 1
            return
        if breaker.state is BreakerState.OPEN:
            return  # a version probe that ran while this tenant's breaker was open
        breaker.add(now, failed, permit.tenant, config.window_s)
        if failed and breaker.over_threshold(config):
            breaker.state, breaker.opened_at = BreakerState.OPEN, now
            self.transitions += 1
