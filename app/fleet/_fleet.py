"""The processes sharing one storage act as one: admin switches, promotions, fleet size.

Every process lists ``_control/`` in storage every ``sync_interval_s`` (±20%
jitter, so a fleet restarted together does not list together): one request
that returns each object's ETag, so an unchanged state costs that one request
and a changed switch costs one read more. What it finds it applies:

* the admin switches and degradations become :class:`~app.controls.Controls`'
  admin state, exactly (one written by any process is in force everywhere
  within one interval; one past its expiry is dropped, and deleted);
* a promotion event it has not seen reloads that one extension;
* the heartbeats count the live processes (:attr:`Fleet.size`), which divide
  each tenant's rate limit.

So the bound on propagation is one interval plus one listing and a read: the
process that received the admin call or the webhook applies it at once, and
every other process on its next listing. Why storage and not a peer-to-peer
nudge: the fleet already shares the bucket, a switch must survive a restart
anyway (a restarted process reads it before it is ready), and a nudge would
reach one worker per pod (workers share the pod's port) while the listing
reaches them all; at one request a second per process, a 10-pod, 4-worker
fleet asks storage 40 cheap listings a second.

When storage is unreachable the process keeps the state it last read and
retries with backoff (up to ``stale_after_s / 2``); ``/readyz`` fails once that
state is older than ``stale_after_s``, and passes again on the first good
listing. A process that never read the state is not ready either: a restarted
pod comes back with the current switches before it takes traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from app.controls import Controls, Degradation, Switch, Target
from app.errors import InvocationFailure
from app.fleet._objects import (
    EVENTS,
    MAX_CONTROL_BYTES,
    MEMBERS,
    SWITCHES,
    PromotionNotice,
    member_key,
    parse_control,
    promotion_notice,
    switch_key,
)
from app.fleet._rollbacks import ROLLBACKS, SharedRollbacks
from app.limits import NO_LIMITS
from app.settings import FleetConfig
from app.storage import CONTROL_DIR, SharedStore, StoredObject
from app.telemetry import Family, get_logger, single

__all__ = ["Fleet", "TooManySwitches"]

_log = get_logger("app.fleet")
_MAX_LISTED = 20_000
_JSON = "application/json"
_C = TypeVar("_C", Switch, Degradation)

Reload = Callable[[str, str], Awaitable[None]]
"""Reload one extension: ``(extension_id, owner)``."""


class TooManySwitches(ValueError):
    """The fleet holds ``max_switches`` admin controls already."""


class Fleet:
    """This process's view of the fleet's shared control state (see the module doc)."""

    def __init__(
        self,
        store: SharedStore,
        controls: Controls,
        config: FleetConfig,
        *,
        reload: Reload,
        shared: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``shared``: other processes read the same store (else readiness never waits on it)."""
        self._store = store
        self._controls = controls
        self._config = config
        self._reload = reload
        self.shared = shared
        self._clock = clock
        self.process = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._etags: dict[str, str] = {}
        self._held: dict[str, Switch | Degradation] = {}
        self._seen_events: set[str] | None = None  # None until the first listing
        self._reloads: set[asyncio.Task[None]] = set()
        self._beat_at = -float("inf")
        self._task: asyncio.Task[None] | None = None
        self.synced_at: float | None = None
        self.problem: str | None = "not read yet"
        self.size = 1
        """Live processes sharing the storage (this one included)."""
        self.failures = 0
        self.events_applied = 0
        self.rollbacks = SharedRollbacks(store, lambda _: None)
        """Rollbacks shared by the fleet; the runtime sets what follows them."""

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Read the state once (so switches hold before ready), then keep following it."""
        await self.sync_quietly()
        self._task = asyncio.create_task(self._follow())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._reloads):
            task.cancel()
        if self.synced_at is not None:  # leave: the others stop counting us at once
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._store.delete(member_key(self.process)), 2.0)

    async def _follow(self) -> None:
        delay = self._config.sync_interval_s
        while True:
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))  # noqa: S311
            if await self.sync_quietly():
                delay = self._config.sync_interval_s
            else:
                delay = min(delay * 2, max(self._config.sync_interval_s, self.backoff_max_s))

    @property
    def backoff_max_s(self) -> float:
        return self._config.stale_after_s / 2

    async def sync_quietly(self) -> bool:
        """:meth:`sync`, recording a failure instead of raising it."""
        try:
            await self.sync()
        except InvocationFailure as failure:
            self._failed(failure.message)
            return False
        except Exception as exc:  # noqa: BLE001 - the follower must outlive any one failure
            _log.exception("fleet.sync_failed")
            self._failed(type(exc).__name__)
            return False
        return True

    def _failed(self, problem: str) -> None:
        if self.problem is None:
            _log.warning("fleet.storage_unreachable", problem=problem)
        self.failures += 1
        self.problem = problem

    # -- one listing -----------------------------------------------------------------
    async def sync(self) -> None:
        """List the control state once and apply it; raises UNAVAILABLE."""
        now = self._clock()
        if now - self._beat_at >= self._config.heartbeat_s:
            body = f'{{"process": "{self.process}"}}'.encode()
            await self._store.put(member_key(self.process), body, _JSON)
            self._beat_at = now
        listed = await self._store.list_objects(CONTROL_DIR, _MAX_LISTED)
        await self._read_switches([o for o in listed if o.key.startswith(SWITCHES)])
        self._apply()
        await self.rollbacks.read([o for o in listed if o.key.startswith(ROLLBACKS)])
        self._follow_events([o for o in listed if o.key.startswith(EVENTS)])
        members = [o for o in listed if o.key.startswith(MEMBERS)]
        self._count(members)
        await self._tidy(members, [o for o in listed if o.key.startswith(EVENTS)])
        if self.problem is not None and self.synced_at is not None:
            _log.info("fleet.storage_reachable")
        self.synced_at = self._clock()
        self.problem = None

    async def _read_switches(self, listed: list[StoredObject]) -> None:
        for gone in set(self._etags) - {o.key for o in listed}:
            self._etags.pop(gone, None)
            self._held.pop(gone, None)
        for item in listed[: self._config.max_switches]:
            if self._etags.get(item.key) == item.etag:
                continue
            raw = await self._store.read_object(item.key, MAX_CONTROL_BYTES)
            control = parse_control(item.key, raw) if raw is not None else None
            self._etags[item.key] = item.etag
            if control is None:
                self._held.pop(item.key, None)
                if raw is not None:
                    _log.warning("fleet.control_rejected", key=item.key)
            else:
                self._held[item.key] = control

    def _apply(self) -> None:
        """Hand the unexpired controls to :class:`Controls` (expired ones are deleted
        by :meth:`_tidy`)."""
        live = [c for c in self._held.values() if not _expired(c)]
        self._controls.replace_admin(
            [c for c in live if isinstance(c, Switch)],
            [c for c in live if isinstance(c, Degradation)],
        )

    def _follow_events(self, listed: list[StoredObject]) -> None:
        keys = {o.key for o in listed}
        if self._seen_events is None:
            self._seen_events = keys  # the catalog was just loaded whole: nothing to replay
            return
        for item in listed:
            if item.key not in self._seen_events:
                self._seen_events.add(item.key)
                task = asyncio.create_task(self._reload_from(item.key))
                self._reloads.add(task)
                task.add_done_callback(self._reloads.discard)
        self._seen_events &= keys  # forget the ones storage no longer holds

    async def _reload_from(self, key: str) -> None:
        raw = None
        with contextlib.suppress(InvocationFailure):
            raw = await self._store.read_object(key, MAX_CONTROL_BYTES)
        if raw is None:
            return
        try:
            notice = PromotionNotice.model_validate_json(raw)
        except ValueError:
            _log.warning("fleet.event_rejected", key=key)
            return
        try:
            await self._reload(notice.extension_id, notice.owner)
        except InvocationFailure as failure:
            # Not applied: forget it, so the next listing tries again.
            if self._seen_events is not None:
                self._seen_events.discard(key)
            _log.warning("fleet.reload_deferred", key=key, reason=failure.message)
            return
        self.events_applied += 1
        _log.info(
            "fleet.promotion_followed",
            owner=notice.owner or "_platform",
            extension=notice.extension_id,
        )

    def _count(self, members: list[StoredObject]) -> None:
        """Live members: heard from within the TTL of this process's own heartbeat,
        both by the store's clock (so no two hosts' clocks are compared)."""
        mine = next((m for m in members if m.key == member_key(self.process)), None)
        if mine is None:
            return
        since = mine.modified - self._config.member_ttl_s
        self.size = max(1, sum(1 for m in members if m.modified >= since))

    async def _tidy(self, members: list[StoredObject], events: list[StoredObject]) -> None:
        """Delete expired switches, old events and long-gone members: done by one
        process, the live member first in key order, so the fleet does it once."""
        mine = next((m for m in members if m.key == member_key(self.process)), None)
        if mine is None:
            return
        since = mine.modified - self._config.member_ttl_s
        live = sorted(m.key for m in members if m.modified >= since)
        if not live or live[0] != mine.key:
            return
        doomed = [k for k, c in self._held.items() if _expired(c)]
        doomed += [e.key for e in events if e.modified < mine.modified - self._config.event_ttl_s]
        doomed += [
            m.key for m in members if m.modified < mine.modified - 10 * self._config.member_ttl_s
        ]
        for key in doomed[:100]:  # a bounded amount per listing
            await self._store.delete(key)

    # -- what the admin RPC and the webhook ask of it ------------------------------
    async def disable(self, switch: Switch, *, operator: str, ttl_s: float = 0) -> None:
        """Write ``switch`` for the fleet and apply it here at once; raises UNAVAILABLE."""
        await self._write(switch_key("disable", switch), _stamped(switch, operator, ttl_s))

    async def degrade(self, degradation: Degradation, *, operator: str, ttl_s: float = 0) -> None:
        """Write (or, with no ceilings, remove) a degradation for the fleet."""
        key = switch_key("degrade", degradation)
        if degradation.ceilings == NO_LIMITS:
            await self._remove(key)
        else:
            await self._write(key, _stamped(degradation, operator, ttl_s))

    async def enable(self, target: Target) -> bool:
        """Remove the admin switch on ``target`` fleet-wide; whether there was one."""
        return await self._remove(switch_key("disable", target))

    async def announce_promotion(self, extension_id: str, owner: str) -> None:
        """Tell the other processes to reload this extension (after this one did)."""
        key, body = promotion_notice(extension_id, owner)
        await self._store.put(key, body, _JSON)
        if self._seen_events is not None:
            self._seen_events.add(key)  # this process reloaded it already

    async def _write(self, key: str, control: Switch | Degradation) -> None:
        if key not in self._held and len(self._held) >= self._config.max_switches:
            raise TooManySwitches(
                f"the fleet holds {self._config.max_switches} admin controls already;"
                " enable some first"
            )
        await self._store.put(key, control.model_dump_json(exclude_none=True).encode(), _JSON)
        self._held[key] = control
        self._etags[key] = ""  # the next listing reads it back
        self._apply()

    async def _remove(self, key: str) -> bool:
        existed = key in self._held
        await self._store.delete(key)
        self._held.pop(key, None)
        self._etags.pop(key, None)
        self._apply()
        return existed

    # -- what /readyz and /metrics read ----------------------------------------------
    def readiness(self) -> list[str]:
        """Why this process's control state cannot be trusted; empty when it can."""
        if not self.shared:
            return []
        if self.synced_at is None:
            return [f"control state not read from storage yet ({self.problem})"]
        age = self._clock() - self.synced_at
        if age > self._config.stale_after_s:
            return [
                f"control state is stale: last read from storage {age:.0f} s ago ({self.problem})"
            ]
        return []

    def metric_families(self) -> Iterable[Family]:
        age = self._clock() - self.synced_at if self.synced_at is not None else -1.0
        yield single(
            "gauge", "fleet_processes", "Live processes sharing the control state.", self.size
        )
        yield single(
            "gauge",
            "control_state_age_seconds",
            "Since the control state was last read from storage (-1: never).",
            age,
        )
        yield single(
            "counter",
            "control_sync_failures",
            "Listings of the control state that failed.",
            self.failures,
        )
        yield single(
            "counter",
            "fleet_promotions_followed",
            "Extensions reloaded because another process announced a promotion.",
            self.events_applied,
        )


def _expired(control: Switch | Degradation) -> bool:
    return control.expires_at is not None and control.expires_at.timestamp() <= time.time()


def _stamped(control: _C, operator: str, ttl_s: float) -> _C:
    now = datetime.datetime.now(datetime.UTC)
    expires = now + datetime.timedelta(seconds=ttl_s) if ttl_s > 0 else None
    return control.model_copy(update={"set_by": operator, "set_at": now, "expires_at": expires})
