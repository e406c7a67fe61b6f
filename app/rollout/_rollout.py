"""Rolling out a new version: canary by tenant, shadow runs, automatic rollback.

A promotion pointer (``promoted.json``) may name a ``candidate`` and a
``previous`` version besides the promoted one (``PromotedPointer``). For a
call that names no version:

1. **Rolled back**: when the promoted version's version-wide breaker opens
   (faults from at least ``breaker_min_tenants`` tenants: the tenancy rule for
   a bad build) within ``rollback_window_s`` of its promotion, this process
   serves ``previous`` instead, logs and counts it, and keeps doing so until a
   person clears it (admin RPC) or a new promotion replaces the pointer.
2. **Canary**: ``canary_percent`` of tenants, chosen by a stable hash of
   (tenant, extension), get the candidate; a tenant sees one version.
3. Otherwise the promoted version.

Kill switches are asked after this, on the version chosen, so a switch on
``previous`` wins over the rollback that chose it.

**Shadow runs**: when the promoted version answered, ``shadow_per_mille`` of
calls (tenants listed in ``rollout_shadow_opt_out`` never) also run the
candidate on the same input *after* the answer is on its way: in a task of
its own, on the low-priority lane (never inline on the loop), at most
``shadow_max_in_flight`` at once and one tenant's calls at most half of
them (past that the sample is dropped and counted: one tenant's traffic
cannot take every sample slot). Whether the outcomes match (same output bytes, or same error kind)
is counted by extension and version pair, and the last differences are kept
as redacted samples (sizes, kinds, hashes of the outputs; never a payload).
A shadow run never changes the live answer, and its failures count only
against the candidate.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal

from app.catalog import Catalog, ExtensionDefinition, PromotedPointer
from app.controls import Breakers, BreakerState
from app.errors import InvocationFailure
from app.invocation import Invocation, Outcome
from app.settings import RolloutConfig
from app.telemetry import Family, get_logger, single

__all__ = ["Diff", "RollbackRecord", "Rollouts"]

_log = get_logger("app.rollout")
Resolve = Callable[[str, str, str], ExtensionDefinition]
Run = Callable[[ExtensionDefinition, Invocation], Coroutine[Any, Any, Outcome]]
Share = Callable[[tuple[str, str], "RollbackRecord | None"], Awaitable[None]]
"""Tell the fleet about a rollback (a record) or its clearing (``None``)."""
Key = tuple[str, str]
"""``(owner, extension_id)``."""


@dataclass(frozen=True, slots=True)
class RollbackRecord:
    """Why and when a promoted version stopped being served."""

    from_version: str
    to_version: str
    reason: str
    at: datetime.datetime


@dataclass(frozen=True, slots=True)
class Diff:
    """One shadow run whose outcome differed: what an operator may see of it."""

    at: datetime.datetime
    promoted: str
    candidate: str
    input_bytes: int
    live: str
    """``ok`` or the error kind."""
    shadow: str
    live_sha256: str
    shadow_sha256: str
    live_bytes: int
    shadow_bytes: int


@dataclass(slots=True)
class _State:
    first_seen: dict[tuple[str, str], float] = field(default_factory=dict)
    rolled_back: dict[Key, RollbackRecord] = field(default_factory=dict)
    shadows: Counter[tuple[str, str, str, str, str]] = field(default_factory=Counter)
    diffs: dict[Key, deque[Diff]] = field(default_factory=dict)
    rollbacks: Counter[tuple[str, str]] = field(default_factory=Counter)
    cleared: set[tuple[Key, str]] = field(default_factory=set)
    """Rollbacks a person cleared: that promotion is not rolled back again."""
    shared: set[Key] = field(default_factory=set)
    """Rollbacks seen in the fleet's shared state: cleared there, lifted here."""


Shadow = Literal["match", "differ", "dropped", "failed"]


class Rollouts:
    """Chooses the version a call gets, and runs the candidate's shadows."""

    def __init__(
        self,
        catalog: Catalog,
        resolve: Resolve,
        breakers: Breakers,
        config: RolloutConfig,
        *,
        opted_out: Callable[[str], bool] = lambda _: False,
        share: Share | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``share``: how a rollback decided here reaches the other processes."""
        self._share = share
        self._catalog = catalog
        self._resolve = resolve
        self._breakers = breakers
        self._config = config
        self._opted_out = opted_out
        self._clock = clock
        self._state = _State()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._tenant_shadows: Counter[str] = Counter()
        self._sharing: set[asyncio.Task[None]] = set()
        self._random = random.Random()  # noqa: S311 - sampling, not secrecy

    # -- which version ------------------------------------------------------------
    def resolve(self, tenant: str, extension_id: str, version: str) -> ExtensionDefinition:
        """The definition this call runs (see the module doc); a named version is as asked."""
        if version:
            return self._resolve(tenant, extension_id, version)
        found = self._catalog.pointer(tenant, extension_id)
        if found is None:
            return self._resolve(tenant, extension_id, "")
        key, pointer = found
        return self._resolve(tenant, extension_id, self.choose(key, pointer, tenant))

    def choose(self, key: Key, pointer: PromotedPointer, tenant: str) -> str:
        rolled = self._state.rolled_back.get(key)
        if rolled is not None:
            if rolled.from_version == pointer.version:
                return rolled.to_version
            self._state.rolled_back.pop(key, None)  # a new promotion replaced it
        if (
            pointer.previous is not None
            and (key, pointer.version) not in self._state.cleared
            and self._failing_since_promotion(key, pointer)
        ):
            return self._roll_back(key, pointer)
        if (
            pointer.candidate is not None
            and pointer.canary_percent > 0
            and canary_bucket(tenant, key) < pointer.canary_percent
        ):
            return pointer.candidate
        return pointer.version

    def _failing_since_promotion(self, key: Key, pointer: PromotedPointer) -> bool:
        owner, extension_id = key
        if self._breakers.state((owner, extension_id, pointer.version)) is not BreakerState.OPEN:
            return False
        if pointer.promoted_at is not None:
            age = time.time() - pointer.promoted_at.timestamp()
        else:  # the window counts from when this process first followed the pointer
            seen = self._state.first_seen.setdefault((key[1], pointer.version), self._clock())
            age = self._clock() - seen
        return age <= pointer.rollback_window_s

    def _roll_back(self, key: Key, pointer: PromotedPointer) -> str:
        assert pointer.previous is not None
        record = RollbackRecord(
            from_version=pointer.version,
            to_version=pointer.previous,
            reason=(
                f"{pointer.version} failed for many tenants (its version-wide breaker opened)"
                f" within {pointer.rollback_window_s} s of its promotion"
            ),
            at=datetime.datetime.now(datetime.UTC),
        )
        self._state.rolled_back[key] = record
        self._state.rollbacks[key] += 1
        self._tell_fleet(key, record)
        _log.error(
            "rollout.rolled_back",
            owner=key[0] or "_platform",
            extension=key[1],
            from_version=record.from_version,
            to_version=record.to_version,
            reason=record.reason,
        )
        return record.to_version

    def clear(self, key: Key) -> RollbackRecord | None:
        """A person clears a rollback: the promoted version is served again."""
        record = self._state.rolled_back.pop(key, None)
        self._state.shared.discard(key)
        self._tell_fleet(key, None)
        if record is not None:
            self._state.cleared.add((key, record.from_version))
            _log.warning("rollout.rollback_cleared", owner=key[0] or "_platform", extension=key[1])
        return record

    def follow(self, shared: dict[Key, RollbackRecord]) -> None:
        """The fleet's rollbacks (each listing): follow new ones, lift cleared ones."""
        state = self._state
        for key, record in shared.items():
            if key in state.rolled_back:
                state.shared.add(key)  # this process's own, now stored: a clear lifts it
                continue
            if (key, record.from_version) in state.cleared:
                continue
            state.rolled_back[key] = record
            state.shared.add(key)
            _log.warning(
                "rollout.rollback_followed",
                owner=key[0] or "_platform",
                extension=key[1],
                from_version=record.from_version,
                to_version=record.to_version,
            )
        for key in list(state.shared - set(shared)):  # cleared in another process
            state.shared.discard(key)
            lifted = state.rolled_back.pop(key, None)
            if lifted is not None:
                state.cleared.add((key, lifted.from_version))
                _log.warning(
                    "rollout.rollback_lifted", owner=key[0] or "_platform", extension=key[1]
                )

    def _tell_fleet(self, key: Key, record: RollbackRecord | None) -> None:
        if self._share is None:
            return
        task = asyncio.get_running_loop().create_task(self._publish(key, record))
        self._sharing.add(task)
        task.add_done_callback(self._sharing.discard)

    async def _publish(self, key: Key, record: RollbackRecord | None) -> None:
        assert self._share is not None
        try:
            await self._share(key, record)
        except Exception:  # noqa: BLE001 - the fleet learns it from its own breakers anyway
            _log.warning("rollout.share_failed", extension=key[1], exc_info=True)
            return
        if record is not None and self._state.rolled_back.get(key) is record:
            self._state.shared.add(key)  # stored: a clear elsewhere now lifts it here

    # -- shadows ------------------------------------------------------------------------
    async def run(
        self, definition: ExtensionDefinition, invocation: Invocation, live: Run
    ) -> Outcome:
        """Run the live call; maybe start a shadow of the candidate once it has an answer."""
        try:
            outcome = await live(definition, invocation)
        except InvocationFailure as failure:
            self._maybe_shadow(definition, invocation, live, failure)
            raise
        self._maybe_shadow(definition, invocation, live, outcome)
        return outcome

    def _maybe_shadow(
        self,
        definition: ExtensionDefinition,
        invocation: Invocation,
        live: Run,
        answer: Outcome | InvocationFailure,
    ) -> None:
        if invocation.version or invocation.background:
            return
        found = self._catalog.pointer(invocation.context.tenant_id, definition.id)
        if found is None:
            return
        key, pointer = found
        candidate = pointer.candidate
        if (
            candidate is None
            or pointer.shadow_per_mille <= 0
            or definition.version != pointer.version
            or self._random.random() * 1000 >= pointer.shadow_per_mille
            or self._opted_out(invocation.context.tenant_id)
        ):
            return
        tenant = invocation.context.tenant_id
        cap = self._config.shadow_max_in_flight
        if len(self._in_flight) >= cap or self._tenant_shadows[tenant] >= max(1, cap // 2):
            self._count(key, pointer.version, candidate, "dropped")
            return
        shadow = replace(invocation, version=candidate, deadline=None, background=True)
        task = asyncio.create_task(
            self._shadow(key, (definition.version, candidate), shadow, live, answer)
        )
        self._in_flight.add(task)
        self._tenant_shadows[tenant] += 1
        task.add_done_callback(partial(self._shadow_done, tenant))

    def _shadow_done(self, tenant: str, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._tenant_shadows[tenant] -= 1
        if self._tenant_shadows[tenant] <= 0:
            del self._tenant_shadows[tenant]  # bounded by the tasks in flight

    async def _shadow(
        self,
        key: Key,
        versions: tuple[str, str],
        invocation: Invocation,
        live: Run,
        answer: Outcome | InvocationFailure,
    ) -> None:
        """``versions``: (promoted, candidate)."""
        promoted, candidate = versions
        await asyncio.sleep(0)  # after the live answer has been handed back
        try:
            definition = self._resolve(invocation.context.tenant_id, key[1], candidate)
            shadow: Outcome | InvocationFailure = await live(definition, invocation)
        except InvocationFailure as failure:
            shadow = failure
        except Exception:  # noqa: BLE001 - a shadow must never surface anywhere
            _log.exception("rollout.shadow_crashed", extension=key[1], candidate=candidate)
            self._count(key, promoted, candidate, "failed")
            return
        same = _summary(answer)[:2] == _summary(shadow)[:2]
        self._count(key, promoted, candidate, "match" if same else "differ")
        if not same:
            live_kind, live_sha, live_size = _summary(answer)
            shadow_kind, shadow_sha, shadow_size = _summary(shadow)
            samples = self._state.diffs.setdefault(key, deque(maxlen=self._config.diff_samples))
            samples.append(
                Diff(
                    at=datetime.datetime.now(datetime.UTC),
                    promoted=promoted,
                    candidate=candidate,
                    input_bytes=len(invocation.input),
                    live=live_kind,
                    shadow=shadow_kind,
                    live_sha256=live_sha,
                    shadow_sha256=shadow_sha,
                    live_bytes=live_size,
                    shadow_bytes=shadow_size,
                )
            )

    def _count(self, key: Key, promoted: str, candidate: str, result: Shadow) -> None:
        self._state.shadows[(key[0], key[1], promoted, candidate, result)] += 1

    @property
    def shadows_in_flight(self) -> int:
        return len(self._in_flight)

    def rollbacks(self) -> dict[Key, RollbackRecord]:
        """Every extension this process rolled back, and why."""
        return dict(self._state.rolled_back)

    async def drain(self) -> None:
        """Wait for the shadow runs and fleet writes in flight (tests, a clean shutdown)."""
        while self._in_flight or self._sharing:
            await asyncio.gather(*self._in_flight, *self._sharing, return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._in_flight):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)

    # -- what the admin RPC and /metrics read -------------------------------------------
    def rolled_back(self, key: Key) -> RollbackRecord | None:
        return self._state.rolled_back.get(key)

    def shadow_counts(self, key: Key) -> dict[tuple[str, str, str], int]:
        """``{(promoted, candidate, result): count}`` for one extension."""
        return {(p, c, r): n for (o, e, p, c, r), n in self._state.shadows.items() if (o, e) == key}

    def diffs(self, key: Key) -> list[Diff]:
        return list(self._state.diffs.get(key, ()))

    def metric_families(self) -> Iterable[Family]:
        yield Family(
            "counter",
            "shadow_runs",
            "Shadow runs of a candidate version by result: match, differ (output bytes or"
            " error kind), dropped (too many in flight), failed.",
            [
                ((o or "_platform", e, f"{p}->{c}", r), float(n))
                for (o, e, p, c, r), n in self._state.shadows.items()
            ],
            ("owner", "extension", "versions", "result"),
        )
        yield Family(
            "counter",
            "rollbacks",
            "Automatic rollbacks of a promoted version that failed for many tenants.",
            [((o or "_platform", e), float(n)) for (o, e), n in self._state.rollbacks.items()],
            ("owner", "extension"),
        )
        yield single(
            "gauge",
            "rolled_back_extensions",
            "Extensions serving their previous version after an automatic rollback"
            " (a person clears it).",
            len(self._state.rolled_back),
        )


def canary_bucket(tenant: str, key: Key) -> int:
    """The tenant's stable place (0-99) for this extension's canary."""
    digest = hashlib.sha256(f"{key[0]}\0{key[1]}\0{tenant}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100


def _summary(answer: Outcome | InvocationFailure) -> tuple[str, str, int]:
    """``(kind, sha256 of the output, output size)``; a failure has no output."""
    if isinstance(answer, InvocationFailure):
        return answer.kind.value, "", 0
    return "ok", hashlib.sha256(answer.output).hexdigest(), len(answer.output)
