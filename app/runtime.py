"""The invocation pipeline, assembled: catalog -> storage -> sandbox.

``Runtime`` is the production :class:`~app.invocation.Invoker`. It owns the
long-lived parts (engine, executor, caches, catalog poller) and their start and
stop, so the ASGI app and the CLI build the same thing.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from prometheus_client import CollectorRegistry

from app._scrape import scrape
from app.catalog import Catalog, ExtensionDefinition
from app.controls import (
    GUEST_FAULTS,
    PLATFORM_OWNER,
    BreakerConfig,
    Breakers,
    BreakerState,
    Controls,
    Rate,
    RateLimiter,
    Refusal,
    TenantGate,
    off_turn,
)
from app.errors import ErrorKind, InvocationFailure
from app.hostcalls import Ceilings, HttpBridge, PolicyStore
from app.invocation import Invocation, Outcome
from app.sandbox import (
    CompiledModule,
    DeclaredLimits,
    Executor,
    FastPath,
    SandboxEngine,
    effective_limits,
    run,
)
from app.settings import Settings
from app.storage import PLATFORM, ModuleStore, ObjectSource, source_from_settings
from app.telemetry import InvocationMetrics, ScrapeCollector, get_logger, tracer

_log = get_logger("app.runtime")
# Child spans cost ~10 µs a call even as no-ops: skipped when the parent is not recorded.
_NO_SPAN = contextlib.nullcontext(trace.INVALID_SPAN)
PLATFORM_LABEL = PLATFORM_OWNER
"""The ``owner`` of platform extensions in metrics, logs and spans."""


class Runtime:
    """Runs invocations end to end and keeps the catalog current."""

    def __init__(self, settings: Settings, source: ObjectSource | None = None) -> None:
        self.settings = settings
        self.source = source or source_from_settings(settings)
        self.engine = SandboxEngine(settings)
        self.catalog = Catalog(self.source)
        self.modules = ModuleStore(
            self.source,
            self.engine,
            max_entries=settings.module_cache_entries,
            max_module_bytes=settings.max_module_bytes,
            disk_dir=settings.module_cache_dir,
        )
        self.executor = Executor(settings)
        self.fastpath = FastPath(settings.inline_threshold_us, settings.inline_slice_ms)
        self.policy = PolicyStore(settings.policy_file)
        self.host_bridge = HttpBridge(settings)
        self.controls = Controls(settings.kill_switches_file)
        self.breakers = Breakers(
            BreakerConfig(
                window_s=settings.breaker_window_s,
                min_calls=settings.breaker_min_calls,
                failure_rate=settings.breaker_failure_rate,
                cooldown_s=settings.breaker_cooldown_s,
                min_tenants=settings.breaker_min_tenants,
            )
        )
        # Checked per tenant by the RPC layer right after authentication, and per
        # (tenant, tier) here once the tier is known.
        self.rate_limits = RateLimiter(
            Rate(rate_per_s=settings.rate_limit_per_s, burst=settings.rate_limit_burst),
            tiers=settings.rate_limit_tiers,
            overrides=self.controls.tenant_limit,
            max_buckets=settings.rate_limit_max_buckets,
            count_tenants=settings.metrics_tenant_label,
            hold_s=settings.rate_limit_hold_s,
            hold_max_per_tenant=settings.rate_limit_hold_max_per_tenant,
            hold_max=settings.rate_limit_hold_max,
        )
        self.gate = TenantGate(settings.tenant_max_active, settings.tenant_max_waiting)
        self.registry = CollectorRegistry()
        self.metrics = InvocationMetrics(self.registry, tenant_label=settings.metrics_tenant_label)
        self.registry.register(ScrapeCollector(lambda: scrape(self)))
        self._poller: asyncio.Task[None] | None = None
        self._refreshing: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.storage_problem: str | None = "not started"

    async def start(self) -> None:
        """Start the engine and hydrate the catalog; storage trouble is not fatal."""
        # Process-wide: guests calling host functions on sandbox threads take the GIL
        # thousands of times a second, and with the default 5 ms interval the event
        # loop waited whole intervals for it (a log-flooding tenant took good
        # traffic's p95 from 4 ms to 190 ms; at 0.5 ms it stayed under 5 ms).
        sys.setswitchinterval(self.settings.gil_switch_interval_us / 1e6)
        self.engine.start()
        await self.refresh_all()
        if self.settings.catalog_poll_interval_s > 0:
            self._poller = asyncio.create_task(self._poll())

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        self.executor.close()
        self.host_bridge.close()
        self.engine.close()
        await self.source.close()

    async def refresh_all(self) -> None:
        """Reload every definition; records why storage is unusable, if it is."""
        problem = await self.source.check()
        if problem is None:
            try:
                count = await self.catalog.refresh()
            except InvocationFailure as failure:
                problem = failure.message
            else:
                _log.info("catalog.refreshed", definitions=count)
        if problem != self.storage_problem and problem is not None:
            _log.error("storage.not_ready", problem=problem)
        self.storage_problem = problem

    async def refresh_extension(self, extension_id: str, owner: str = PLATFORM) -> None:
        """Reload one extension now; concurrent requests for it share one reload."""
        key = (owner, extension_id)
        task = self._refreshing.get(key)
        if task is None:
            task = asyncio.create_task(self.catalog.refresh_extension(extension_id, owner))
            self._refreshing[key] = task
            task.add_done_callback(lambda _: self._refreshing.pop(key, None))
        await asyncio.shield(task)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.catalog_poll_interval_s)
            try:
                await self.refresh_all()
            except Exception:  # noqa: BLE001 - the poller must outlive any one failure
                _log.exception("catalog.poll_failed")

    def describe(self, visible_to: str | None = None) -> list[ExtensionView]:
        """Every loaded extension with its state, for operators and the console.

        ``visible_to``: only what that tenant may call (its own extensions,
        then platform ones it does not shadow), as the RPC would resolve them.
        ``None``: everything, for operators.
        """
        cached = set(self.modules.cached())
        breakers = self.breakers.states()
        listing = self.catalog.extensions()
        if visible_to is not None:
            own = {i for (o, i) in listing if o == visible_to}
            listing = {
                (o, i): v
                for (o, i), v in listing.items()
                if o == visible_to or (o == PLATFORM and i not in own)
            }
        views: list[ExtensionView] = []
        for (owner, extension_id), (promoted, versions) in sorted(listing.items()):
            described: list[VersionView] = []
            for version in versions:
                definition = self.catalog.lookup(owner, extension_id, version)
                if definition is None:  # removed between the two reads
                    continue
                key = (owner, extension_id, version)
                state, open_tenants = breakers.get(key, (None, 0))
                described.append(
                    VersionView(
                        definition=definition,
                        cached=definition.sha256 in cached,
                        disabled_reason=self.controls.decide(
                            extension_id, version, definition.risk_tier, "", owner
                        ).disabled_reason,
                        breaker=state,
                        open_tenant_breakers=open_tenants,
                    )
                )
            views.append(
                ExtensionView(
                    owner=owner or PLATFORM_LABEL,
                    extension_id=extension_id,
                    promoted=promoted,
                    versions=described,
                )
            )
        return views

    def readiness(self) -> list[str]:
        """Reasons this process should not receive traffic; empty when ready."""
        return [self.storage_problem] if self.storage_problem else []

    async def invoke(self, invocation: Invocation) -> Outcome:
        """Resolve, check controls, run; every call is counted, timed and traced."""
        started = time.perf_counter()
        labels = {"owner": "", "extension": "_unknown", "version": "", "tier": ""}
        result = "ok"
        outcome: Outcome | None = None
        with tracer().start_as_current_span(
            "extension.invoke",
            attributes={
                "ameide.extension": invocation.extension_id[:128],  # caller-chosen: bounded
                "ameide.tenant": invocation.context.tenant_id,
                "ameide.request_id": invocation.context.request_id,
            },
        ) as span:
            try:
                definition = self._resolve(invocation)
                labels = {
                    "owner": definition.owner or PLATFORM_LABEL,
                    "extension": definition.id,
                    "version": definition.version,
                    "tier": definition.risk_tier,
                }
                span.set_attribute("ameide.version", definition.version)
                span.set_attribute("ameide.owner", definition.owner or PLATFORM_LABEL)
                span.set_attribute("ameide.risk_tier", definition.risk_tier)
                context = invocation.context
                with structlog.contextvars.bound_contextvars(
                    owner=definition.owner or PLATFORM_LABEL,
                    extension=definition.id,
                    version=definition.version,
                    tenant=context.tenant_id,
                    organization=context.organization_id,
                    request_id=context.request_id,
                ):
                    outcome = await self._guarded(definition, invocation)
                span.set_attribute("ameide.fuel_consumed", outcome.metrics.fuel_consumed)
                return outcome
            except InvocationFailure as failure:
                result = failure.kind.value.lower()
                failure.resolved_version = failure.resolved_version or labels["version"]
                span.set_attribute("ameide.error_kind", failure.kind.value)
                span.set_status(Status(StatusCode.ERROR, failure.kind.value))
                raise
            except BaseException:
                result = "internal"
                raise
            finally:
                metrics = outcome.metrics if outcome else None
                if self.settings.log_invocations:
                    context = invocation.context
                    (_log.info if result == "ok" else _log.warning)(
                        "invocation",
                        **labels,
                        outcome=result,
                        tenant=context.tenant_id,
                        organization=context.organization_id,
                        request_id=context.request_id,
                        duration_us=int((time.perf_counter() - started) * 1e6),
                    )
                self.metrics.observe(
                    **labels,
                    outcome=result,
                    tenant=invocation.context.tenant_id,
                    seconds=time.perf_counter() - started,
                    fuel=metrics.fuel_consumed if metrics else 0,
                    peak_memory=metrics.peak_memory_bytes if metrics else 0,
                )

    def _resolve(self, invocation: Invocation) -> ExtensionDefinition:
        try:
            return self.catalog.resolve(
                invocation.context.tenant_id, invocation.extension_id, invocation.version
            )
        except InvocationFailure as failure:
            if failure.kind is ErrorKind.NOT_FOUND and self.storage_problem is not None:
                # Unknown because storage is unusable, not because it does not exist:
                # tell callers to retry rather than give up.
                raise InvocationFailure(
                    ErrorKind.UNAVAILABLE, "extension storage is unavailable, retry later"
                ) from None
            raise

    async def _guarded(self, definition: ExtensionDefinition, invocation: Invocation) -> Outcome:
        """Kill switches and the breaker, then the run; the breaker learns the result."""
        decision = self.controls.decide(
            definition.id,
            definition.version,
            definition.risk_tier,
            invocation.context.tenant_id,
            definition.owner_key,
        )
        if decision.disabled_reason is not None:
            raise InvocationFailure(
                ErrorKind.EXTENSION_DISABLED,
                f"{definition.id} {definition.version} is disabled: {decision.disabled_reason}",
            )
        self.rate_limits.check_tier(invocation.context.tenant_id, definition.risk_tier)
        permit = self.breakers.allow(
            (definition.owner_key, definition.id, definition.version),
            invocation.context.tenant_id,
        )
        if isinstance(permit, Refusal):
            whose = "for your tenant" if permit.scope == "tenant" else "for many tenants"
            raise InvocationFailure(
                ErrorKind.UNAVAILABLE,
                f"{definition.id} {definition.version} is failing repeatedly {whose}; its "
                "circuit breaker is open, retry later",
            )
        failed = False
        try:
            return await self._run(definition, invocation, decision.ceilings)
        except InvocationFailure as failure:
            # A timeout the caller's own deadline imposed, or that passed in the
            # queue, says nothing about the guest: only guest faults count.
            failed = failure.kind in GUEST_FAULTS and not failure.caller_side
            raise
        finally:
            self.breakers.record(permit, failed)

    def _inline(
        self,
        compiled: CompiledModule,
        work: Callable[[threading.Event, float | None], Outcome],
        deadline: float,
    ) -> Outcome | None:
        """The outcome of a fast-path run, or ``None`` to use the pool (see FastPath)."""
        fastpath = self.fastpath
        if not fastpath.eligible(compiled):
            return None
        cpu_started = time.thread_time()
        try:
            # The slice is CPU time: a fast guest pre-empted or waiting for the GIL on
            # a busy machine is not stopped (its re-run on the pool would cost more
            # and wait behind others, which made latency collapse under load).
            outcome = work(_never_cancelled(), fastpath.slice_s)
        except InvocationFailure as failure:
            if failure.kind is ErrorKind.TIMEOUT and time.monotonic() < deadline:
                # Over the slice: re-run on the pool with the full budget; a guest
                # that really used the CPU goes there for good.
                if (time.thread_time() - cpu_started) * 1e6 > fastpath.threshold_us:
                    fastpath.overran(compiled)
                return None
            raise
        fastpath.inline_runs += 1
        return outcome

    async def _run(
        self, definition: ExtensionDefinition, invocation: Invocation, degraded: list[Ceilings]
    ) -> Outcome:
        started = time.perf_counter()
        recording = trace.get_current_span().is_recording()
        with tracer().start_as_current_span("module.load") if recording else _NO_SPAN:
            compiled = await off_turn(  # storage and compiling: not the loop's work
                self.modules.get(definition.sha256, definition.wasm_blob_ref.key, definition.abi)
            )
        policy = self.policy.current()
        tier = policy.tier(definition.risk_tier)
        limits = effective_limits(
            _declared(definition),
            self.settings,
            None,
            ceiling=_ceiling(tier.ceilings if tier is not None else None, degraded),
        )
        remaining_ms = invocation.remaining_ms()
        # The caller's deadline, when shorter than the guest's own limit, bounds the
        # run; a TIMEOUT then is the caller's choice, not the guest's fault.
        caller_bound = remaining_ms is not None and remaining_ms < limits.timeout_ms
        if caller_bound:
            limits = replace(limits, timeout_ms=max(0, math.floor(remaining_ms or 0)))
        bridge = self.host_bridge.for_invocation(
            policy=policy,
            tier=definition.risk_tier,
            requested=definition.host_calls,
            extension_id=definition.id,
            version=definition.version,
        )
        real_clock_and_random = tier is not None and tier.real_clock_and_random
        if limits.timeout_ms <= 0:
            raise InvocationFailure(
                ErrorKind.TIMEOUT, "the caller's deadline has passed", caller_side=True
            )
        deadline = time.monotonic() + limits.timeout_ms / 1000.0
        if invocation.deadline is not None:
            deadline = min(deadline, invocation.deadline)

        def work(cancel: threading.Event, cpu_slice_s: float | None = None) -> Outcome:
            began = time.thread_time()  # CPU time: waiting for the GIL is not the guest's cost
            try:
                return run(
                    self.engine,
                    compiled,
                    invocation.input,
                    limits,
                    context=invocation.context,
                    deadline=deadline,
                    include_logs=invocation.include_logs,
                    host_bridge=bridge,
                    cancel=cancel,
                    real_clock_and_random=real_clock_and_random,
                    cpu_slice_s=cpu_slice_s,
                    config_json=definition.config_json,
                )
            finally:
                # Failed runs count too: a guest that always ends at its deadline is long.
                self.fastpath.observe(compiled, (time.thread_time() - began) * 1e6)

        with tracer().start_as_current_span("sandbox.run") if recording else _NO_SPAN as span:
            try:
                inline = self._inline(compiled, work, deadline)
                if inline is not None:
                    outcome, queue_us = inline, 0
                else:
                    outcome, queue_us = await off_turn(  # a lane's thread: its own shares
                        self.executor.submit(
                            work,
                            deadline=deadline,
                            lane=self.fastpath.lane(compiled),
                            tenant=invocation.context.tenant_id,
                        )
                    )
            except InvocationFailure as failure:
                if caller_bound and failure.kind is ErrorKind.TIMEOUT:
                    failure.caller_side = True
                raise
            span.set_attribute("ameide.inline", inline is not None)
            span.set_attribute("ameide.queue_us", queue_us)
        outcome.resolved_version = definition.version
        outcome.metrics.queue_us = queue_us
        outcome.metrics.duration_us = int((time.perf_counter() - started) * 1e6)
        return outcome


@dataclass(frozen=True, slots=True)
class VersionView:
    """One loaded version and what the runtime knows about it."""

    definition: ExtensionDefinition
    cached: bool
    disabled_reason: str | None
    breaker: BreakerState | None
    open_tenant_breakers: int


@dataclass(frozen=True, slots=True)
class ExtensionView:
    """One extension of one owner (``_platform`` or a tenant) with its versions."""

    owner: str
    extension_id: str
    promoted: str | None
    versions: list[VersionView]


def _never_cancelled() -> threading.Event:
    return threading.Event()


def _ceiling(tier: Ceilings | None, degraded: list[Ceilings]) -> DeclaredLimits | None:
    """The lowest of a tier's ceilings and any operator degradations, field by field."""
    sources: list[Ceilings] = [*([tier] if tier else []), *degraded]
    if not sources:
        return None

    def lowest(name: str) -> int | None:
        values = [v for c in sources if (v := getattr(c, name, None)) is not None]
        return min(values) if values else None

    return DeclaredLimits(
        fuel=lowest("fuel"),
        memory_bytes=lowest("memory_bytes"),
        timeout_ms=lowest("timeout_ms"),
        output_bytes=lowest("output_bytes"),
        log_bytes=lowest("log_bytes"),
        max_host_calls=lowest("max_host_calls"),
    )


def _declared(definition: ExtensionDefinition) -> DeclaredLimits:
    limits = definition.limits
    return DeclaredLimits(
        fuel=limits.fuel,
        memory_bytes=limits.memory_bytes,
        timeout_ms=limits.timeout_ms,
        output_bytes=limits.output_bytes,
        log_bytes=limits.log_bytes,
        max_host_calls=limits.max_host_calls,
    )
