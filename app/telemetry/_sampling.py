"""A per-process budget of successful invocation log lines, shared fairly by tenants.

At thousands of calls a second one JSON line per call costs the service more
CPU than a small guest does, and says nothing a counter does not. Successes
are logged up to ``rate_per_s`` a second in all (a token bucket holding one
second's worth); past that they are counted instead, and the next line
written for the same tenant says how many of its successes were left out
before it (``unlogged``). Failures are always logged. Metrics count every call
either way.

Why per tenant too: with one bucket, a tenant flooding cheap successful calls
takes every line, and another tenant's calls go unlogged for as long as the
flood lasts. So each tenant also has a bucket of its own, refilled at
``rate_per_s / TENANT_SHARE`` (at least one line a second): a line needs a
token from both. One tenant gets at most its share of the lines; the total
stays within the process budget however many tenants call. Tenant buckets are
kept for at most ``MAX_TENANTS`` tenants, least recently seen dropped first
(a dropped tenant starts again with a full bucket, which only means a line).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["MAX_TENANTS", "TENANT_SHARE", "LogSampler"]

TENANT_SHARE = 8
"""A tenant's own bucket refills at this fraction of the process budget."""
MAX_TENANTS = 4096


class _Bucket:
    __slots__ = ("capacity", "rate", "stamp", "tokens", "unlogged")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)  # one second's worth, and at least one line
        self.tokens = self.capacity
        self.stamp = now
        self.unlogged = 0

    def refill(self, now: float) -> bool:
        """Top up for the time passed; whether a whole token is there."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.tokens >= 1.0


class LogSampler:
    """Admits at most ``rate_per_s`` lines a second on average; ``0`` admits all."""

    __slots__ = ("_clock", "_rate", "_tenant_rate", "_tenants", "_total")

    def __init__(self, rate_per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate_per_s
        self._tenant_rate = max(1.0, rate_per_s / TENANT_SHARE)
        self._clock = clock
        self._total = _Bucket(rate_per_s, clock())
        self._tenants: OrderedDict[str, _Bucket] = OrderedDict()

    def admit(self, tenant: str = "") -> bool:
        """Whether to write this success's line; if not, it counts in the tenant's
        ``unlogged``."""
        if self._rate <= 0:
            return True
        now = self._clock()
        own = self._tenants.get(tenant)
        if own is None:
            own = self._tenants[tenant] = _Bucket(self._tenant_rate, now)
            if len(self._tenants) > MAX_TENANTS:
                self._tenants.popitem(last=False)
        else:
            self._tenants.move_to_end(tenant)
        if own.refill(now) and self._total.refill(now):
            own.tokens -= 1.0
            self._total.tokens -= 1.0
            return True
        own.unlogged += 1
        return False

    def unlogged(self, tenant: str = "") -> int:
        """Successes of ``tenant`` left out since its last line."""
        own = self._tenants.get(tenant)
        return own.unlogged if own is not None else 0

    def take_unlogged(self, tenant: str = "") -> int:
        """The count to report on the line being written for ``tenant``, reset to zero."""
        own = self._tenants.get(tenant)
        if own is None:
            return 0
        count, own.unlogged = own.unlogged, 0
        return count
