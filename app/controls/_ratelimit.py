"""Per-tenant request-rate limits: token buckets, checked before any work is done.

Fair admission in the executor bounds what one tenant holds at a time; this
bounds how often it may ask. Each tenant has a bucket of ``burst`` tokens
refilled at ``rate_per_s``; a call takes one token, and a call finding the
bucket empty is refused at once as ``OVERLOADED`` with the time until the next
token as its retry hint.

Buckets are per process, but a limit is the fleet's: each process allows
``rate / n`` and a burst of ``burst / n`` (at least one call), ``n`` being the
live processes sharing the storage (``share``, from ``app/fleet``). Spread over
the processes, a tenant gets its rate in total; the error is the time the
fleet's size takes to be learnt (one heartbeat and one listing after a process
joins, the processes that have not yet counted it allow ``rate / (n - 1)``),
and a tenant whose calls reach only some processes (one long-lived HTTP/2
connection) gets less than its rate, never more.

Where the limits come from, most specific first: the tenant's entry in the
hot-reloaded controls file (``tenant_limits:``), else the settings' default.
A risk tier may have a limit of its own in the settings (``rate_limit_tiers``);
that one is a second bucket per (tenant, tier), checked once the extension is
resolved, because the tier is not known before.

The buckets are kept in an LRU of at most ``max_buckets``: a flood of made-up
tenants evicts idle buckets (a refilled bucket is the same as a new one), it
never grows memory.

A refusal is cheap but not free: every refused call still crosses Envoy, the
ASGI bridge and the interceptors on the one event loop. A caller that retries
the instant it is refused (64 connections from a C load generator) turns
refusals into a flood of their own, about a thousand a second, and took
another tenant's p95 from 9 ms to 220 ms in ``make reliability``. So
:meth:`RateLimiter.admit` *holds* a refused call for ``hold_s`` (never past
the caller's own deadline) before answering: an asyncio sleep, no CPU, and a
caller with N connections is then refused at most N / ``hold_s`` times a
second. Each hold is drawn between half and one and a half times ``hold_s``:
held calls answered together would come back together, and a burst of 64
refusals is 30 ms of loop that another tenant's call waits behind. Held calls
are capped per tenant and in all (``hold_max_per_tenant``, ``hold_max``);
past either cap a refusal is answered at once, so holding never becomes a
queue that grows.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pydantic import Field

from app.errors import ErrorKind, InvocationFailure
from app.settings import Rate, RateLimitConfig
from app.telemetry import Family, single

__all__ = ["Rate", "RateLimitConfig", "RateLimiter", "TenantLimit"]


class TenantLimit(Rate):
    """A tenant's own limit, from the controls file's ``tenant_limits:``."""

    tenant_id: str = Field(min_length=1, max_length=128)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets per tenant (and per tenant and tier), bounded in number."""

    def __init__(
        self,
        config: RateLimitConfig,
        *,
        overrides: Callable[[str], Rate | None] = lambda _: None,
        share: Callable[[], int] = lambda: 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``overrides``: a tenant's own limit, if it has one (the controls file's);
        ``share``: how many processes the limits are divided among."""
        self._share = share
        self._default = config.default
        self._hold_s = config.hold_s
        self._hold_max_per_tenant = config.hold_max_per_tenant
        self._hold_max = config.hold_max
        self._held: Counter[str] = Counter()
        self.held_total = 0
        """Refusals held before they were answered, since start (``/metrics``)."""
        self._tiers = config.tiers
        self._overrides = overrides
        self._max = config.max_buckets
        self._clock = clock
        self._count_tenants = config.count_tenants
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()
        self._lock = threading.Lock()
        self.rejections: Counter[str] = Counter()
        """Refused calls by tenant, or all under "" unless ``count_tenants`` (``/metrics``)."""

    def check(self, tenant: str) -> None:
        """Take a token of ``tenant``'s own bucket; raises OVERLOADED when it has none."""
        self._take(tenant, "", self._overrides(tenant) or self._default)

    async def admit(self, tenant: str, deadline_s: float | None = None) -> None:
        """:meth:`check`, holding a refusal up to ``hold_s`` (and ``deadline_s``) first."""
        try:
            self.check(tenant)
        except InvocationFailure:
            await self._hold(tenant, deadline_s)
            raise

    @property
    def holding(self) -> int:
        """Refusals being held right now."""
        return sum(self._held.values())

    def metric_families(self) -> Iterable[Family]:
        limited = self.rejections
        yield Family(
            "counter",
            "rate_limited",
            "Calls refused as OVERLOADED by a tenant's rate limit (by tenant with the tenant "
            "label).",
            [((t,), float(n)) for t, n in limited.items()]
            if self._count_tenants
            else [((), float(sum(limited.values())))],
            ("tenant",) if self._count_tenants else (),
        )
        yield single(
            "counter",
            "rate_limit_held",
            "Refusals held (rate_limit_hold_s) before they were answered.",
            self.held_total,
        )
        yield single(
            "gauge",
            "rate_limit_holding",
            "Refusals being held right now (capped per tenant and in all).",
            self.holding,
        )

    async def _hold(self, tenant: str, deadline_s: float | None) -> None:
        wait = self._hold_s * (0.5 + random.random())  # noqa: S311 - spreading, not secrecy
        if deadline_s is not None:
            wait = min(wait, deadline_s * 0.9)
        if wait <= 0:
            return
        if self._held[tenant] >= self._hold_max_per_tenant or self.holding >= self._hold_max:
            return  # caps reached: answer at once rather than queue
        self._held[tenant] += 1
        self.held_total += 1
        try:
            await asyncio.sleep(wait)
        finally:
            self._held[tenant] -= 1
            if not self._held[tenant]:
                del self._held[tenant]

    def check_tier(self, tenant: str, tier: str) -> None:
        """Take a token of the (tenant, tier) bucket, when ``tier`` has a limit."""
        rate = self._tiers.get(tier)
        if rate is not None:
            self._take(tenant, tier, rate, what=f"for {tier} extensions")

    def _take(self, tenant: str, tier: str, rate: Rate, what: str = "") -> None:
        if rate.rate_per_s <= 0:
            return
        key = (tenant, tier)
        now = self._clock()
        per_s, burst = rate.rate_per_s, float(rate.burst)
        share = self._share()
        if share > 1:
            per_s, burst = per_s / share, max(1.0, burst / share)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = _Bucket(tokens=burst, updated=now)
                self._buckets[key] = bucket
                if len(self._buckets) > self._max:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(burst, bucket.tokens + elapsed * per_s)
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            self.rejections[tenant if self._count_tenants else ""] += 1
            wait_ms = math.ceil((1.0 - bucket.tokens) / per_s * 1000)
        limit = f"{rate.rate_per_s:g} calls/s"
        raise InvocationFailure(
            ErrorKind.OVERLOADED,
            f"this tenant is over its rate limit of {limit}{' ' + what if what else ''};"
            f" retry in {wait_ms} ms",
            retry_after_ms=max(1, wait_ms),
        )
