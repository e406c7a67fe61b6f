"""Turns per tenant: at most a few calls of one tenant are worked on at a time.

One event loop does the protocol work of every call: decoding, the inline
fast path, encoding. A tenant with 64 calls in flight, each answered the
moment it arrives, keeps 64 calls' worth of that work queued on the loop, and
every other tenant's call waits behind all of it: in ``make reliability`` an
unpaced flood of ``echo`` took another tenant's p95 from 15 ms to 270 ms
while the rate limit was still letting most of it through.

So a call, once authenticated and within its tenant's rate, takes a *turn*:
a tenant has at most ``active`` calls past this point; its further calls wait
(parked, costing nothing) in a queue of at most ``waiting``, first come first
served, and a call finding that queue full is refused at once as
``OVERLOADED``. Another tenant's call never waits behind them. The executor's
lanes still share their threads fairly; this bounds what reaches them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import Awaitable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from app.errors import ErrorKind, InvocationFailure
from app.telemetry import Family, single

__all__ = ["TenantGate", "Turn", "off_turn"]

T = TypeVar("T")
_RETRY_MS = 100  # the hint given with a full-queue refusal: a turn is usually that close


@dataclass(eq=False, slots=True)
class Turn:
    """One call's turn; :meth:`release` it once, when the call ends."""

    gate: TenantGate | None
    tenant: str
    holding: bool = True

    def release(self) -> None:
        if self.holding and self.gate is not None:
            self.holding = False
            self.gate._hand_on(self.tenant)


_CURRENT: ContextVar[Turn | None] = ContextVar("tenant_turn", default=None)


class TenantGate:
    """Per-tenant turns (see the module doc); ``active <= 0`` turns it off."""

    def __init__(self, active: int, waiting: int) -> None:
        self._max_active = active
        self._max_waiting = waiting
        self._active: Counter[str] = Counter()
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}
        self.refusals = 0
        """Calls refused because their tenant's queue was full (``/metrics``)."""

    @property
    def enabled(self) -> bool:
        return self._max_active > 0

    def metric_families(self) -> Iterable[Family]:
        yield single(
            "counter",
            "tenant_turn_refusals",
            "Calls refused as OVERLOADED because their tenant had too many in progress and "
            "waiting.",
            self.refusals,
        )
        yield single(
            "gauge",
            "tenant_turns_waiting",
            "Calls waiting for one of their tenant's turns.",
            self.waiting(),
        )

    def active(self, tenant: str) -> int:
        return self._active[tenant]

    def waiting(self, tenant: str | None = None) -> int:
        """Calls waiting for a turn: ``tenant``'s, or everyone's."""
        if tenant is not None:
            return len(self._waiters.get(tenant, ()))
        return sum(len(queue) for queue in self._waiters.values())

    async def enter(self, tenant: str, deadline_s: float | None = None) -> Turn:
        """Wait for a turn of ``tenant``'s, the call's own from here on (:func:`off_turn`)."""
        if not self.enabled:
            return Turn(None, tenant, holding=False)
        await self._acquire(tenant, deadline_s, refuse_when_full=True)
        turn = Turn(self, tenant)
        _CURRENT.set(turn)
        return turn

    async def _acquire(
        self, tenant: str, deadline_s: float | None, *, refuse_when_full: bool
    ) -> None:
        queue = self._waiters.get(tenant)
        active = self._active.get(tenant, 0)  # not [tenant]: Counter's __missing__ is Python
        if active < self._max_active and not queue:
            self._active[tenant] = active + 1
            return
        if refuse_when_full and len(queue or ()) >= self._max_waiting:
            self.refusals += 1
            raise InvocationFailure(
                ErrorKind.OVERLOADED,
                f"this tenant has {self._max_active} calls in progress and"
                f" {self._max_waiting} waiting; retry in {_RETRY_MS} ms",
                retry_after_ms=_RETRY_MS,
            )
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(tenant, deque()).append(turn)
        try:
            await asyncio.wait_for(asyncio.shield(turn), deadline_s)
        except BaseException as exc:
            if turn.done() and not turn.cancelled():
                self._hand_on(tenant)  # the turn came as we gave up: pass it on
            else:
                turn.cancel()
                self._forget(tenant, turn)
            if isinstance(exc, TimeoutError):
                raise InvocationFailure(
                    ErrorKind.OVERLOADED,
                    "no turn came for this tenant's call within its deadline",
                ) from None
            raise

    def _hand_on(self, tenant: str) -> None:
        """End a turn: hand it to ``tenant``'s next waiting call, if any."""
        queue = self._waiters.get(tenant)
        while queue:
            turn = queue.popleft()
            if not turn.done():
                turn.set_result(None)  # the turn passes on; active stays the same
                if not queue:
                    del self._waiters[tenant]
                return
        self._waiters.pop(tenant, None)
        self._active[tenant] -= 1
        if self._active[tenant] <= 0:
            del self._active[tenant]

    def _forget(self, tenant: str, turn: asyncio.Future[None]) -> None:
        queue = self._waiters.get(tenant)
        if queue is None:
            return
        with contextlib.suppress(ValueError):
            queue.remove(turn)
        if not queue:
            del self._waiters[tenant]


async def off_turn(waiting: Awaitable[T]) -> T:
    """Await ``waiting`` without holding this call's turn; take one again after."""
    turn = _CURRENT.get()
    if turn is None or turn.gate is None or not turn.holding:
        return await waiting
    turn.release()
    try:
        return await waiting
    finally:
        await turn.gate._acquire(turn.tenant, None, refuse_when_full=False)
        turn.holding = True
