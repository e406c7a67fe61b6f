"""The runtime, wired: every long-lived part built once, started and stopped in order.

``Runtime`` is the production :class:`~app.invocation.Invoker`. It builds the
parts from the settings (each from its own config object, see
``app/settings.py``), connects the pipeline's layers (``app/pipeline/``),
registers each part's metrics, and owns start and stop, so the ASGI app and
the tests assemble the same thing. It does no work of its own on a call:
``invoke`` *is* the pipeline's outer layer.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

from prometheus_client import CollectorRegistry

from app._hotfile import ReloadFailures
from app.catalog import Catalog, CatalogFollower
from app.controls import Breakers, Controls, RateLimiter, TenantGate, off_turn
from app.fleet import Fleet, SharedRollback
from app.hostcalls import HttpBridge, PolicyStore
from app.invocation import Invocation, Outcome
from app.pipeline import Guard, Observe, Prepare, Shadow
from app.rollout import RollbackRecord, Rollouts, Share
from app.runtime._listing import ExtensionView, Listing
from app.sandbox import Executor, FastPath, SandboxEngine, Scheduler
from app.settings import Settings
from app.storage import (
    PLATFORM,
    MemoryStore,
    ModuleStore,
    ObjectSource,
    shared_store,
    source_from_settings,
)
from app.telemetry import InvocationMetrics, register, tracing_installed

__all__ = ["Runtime"]


class Runtime:
    """Builds and owns the parts; ``async with Runtime(settings) as runtime:`` runs them."""

    invoke: Callable[[Invocation], Coroutine[Any, Any, Outcome]]
    """Resolve, check controls, prepare, run; every call counted, timed and traced."""

    def __init__(self, settings: Settings, source: ObjectSource | None = None) -> None:
        self.settings = settings
        self.source = source or source_from_settings(settings)
        # Controls: switches (hot-reloaded file + admin RPC), breakers, rate limits
        # (per tenant by the RPC layer right after authentication, per (tenant,
        # tier) by the pipeline once the tier is known) and tenant turns.
        self.controls = Controls(settings.kill_switches_file)
        self.breakers = Breakers(settings.breaker_config)
        fleet_config = settings.fleet_config
        self.rate_limits = RateLimiter(
            settings.rate_limit_config,
            overrides=self.controls.tenant_limit,
            # A tenant's rate is the fleet's: divided among the live processes.
            share=(lambda: self.fleet.size) if fleet_config.divide_rate_limits else (lambda: 1),
        )
        self.gate = TenantGate(settings.tenant_max_active, settings.tenant_max_waiting)
        # Storage and the sandbox.
        self.engine = SandboxEngine(settings.engine_config)
        self.modules = ModuleStore(
            self.source,
            self.engine,
            max_entries=settings.module_cache_entries,
            max_module_bytes=settings.max_module_bytes,
            disk_dir=settings.module_cache_dir,
        )
        # A promoted version is compiled before its pointer is followed, so no
        # caller waits for a compile (a Python component takes seconds).
        self.catalog = Catalog(self.source, warm=self.modules.warm)
        self.follower = CatalogFollower(
            self.catalog, poll_interval_s=settings.catalog_poll_interval_s
        )
        # Admin switches, promotions and the fleet's size, shared through storage
        # (a local directory is not shared: there the fleet is this process).
        shared = shared_store(self.source)
        self.fleet = Fleet(
            shared or MemoryStore(),
            self.controls,
            fleet_config,
            reload=self.follower.refresh_extension,
            shared=shared is not None,
        )
        self.executor = Executor(settings.executor_config)
        self.fastpath = FastPath(settings.inline_config)
        # A pooled run gives its tenant's turn back while it waits for a thread.
        tracing = tracing_installed()  # asked once: no span objects at all when off
        self.scheduler = Scheduler(
            self.engine, self.executor, self.fastpath, hand_off=off_turn, tracing=tracing
        )
        # Host calls: the tier policy and the bridge to platform services.
        self.policy = PolicyStore(settings.policy_file)
        self.host_bridge = HttpBridge(settings)

        # Rollouts: which version a call gets (rollback, canary), and shadow runs.
        rollout_config = settings.rollout_config
        self.rollouts = Rollouts(
            self.catalog,
            self.follower.resolve,
            self.breakers,
            rollout_config,
            opted_out=rollout_config.shadow_opt_out.__contains__,
            share=_share_through(self.fleet),
        )
        self.fleet.rollbacks.follow = _follower_of(self.rollouts)

        self.registry = CollectorRegistry()
        pipeline = Observe(
            self.rollouts.resolve,
            Shadow(
                self.rollouts,
                Guard(
                    self.controls,
                    self.rate_limits,
                    self.breakers,
                    Prepare(
                        self.modules,
                        self.policy,
                        self.host_bridge,
                        settings.limit_bounds,
                        self.scheduler,
                        tracing=tracing,
                    ),
                ),
            ),
            InvocationMetrics(self.registry, tenant_label=settings.metrics_tenant_label),
            log_invocations=settings.log_invocations,
            log_per_s=settings.invocation_log_per_s,
            tracing=tracing,
        )
        self.invoke = pipeline.invoke
        register(
            self.registry,
            self.catalog,
            self.modules,
            self.engine,
            self.executor,
            self.breakers,
            self.rate_limits,
            self.gate,
            self.fleet,
            self.rollouts,
            self.host_bridge.counts,
            ReloadFailures(
                {
                    "policy": self.policy,
                    "kill_switches": self.controls.file,
                    "hostcall_keys": self.host_bridge.signer,
                }
            ),
        )
        self.listing = Listing(self.catalog, self.modules, self.controls, self.breakers)

    async def start(self) -> None:
        """Start the engine and hydrate the catalog; storage trouble is not fatal."""
        # Process-wide: guests calling host functions on sandbox threads take the GIL
        # thousands of times a second, and with the default 5 ms interval the event
        # loop waited whole intervals for it (a log-flooding tenant took good
        # traffic's p95 from 4 ms to 190 ms; at 0.5 ms it stayed under 5 ms).
        sys.setswitchinterval(self.settings.gil_switch_interval_us / 1e6)
        self.engine.start()
        await self.follower.start()
        await self.fleet.start()  # the switches in force before this process is ready

    async def close(self) -> None:
        """Stop in reverse: no more polling, no more guests, then the clients and clock."""
        await self.rollouts.close()
        await self.fleet.close()
        await self.follower.close()
        self.executor.close()
        self.host_bridge.close()
        self.engine.close()
        await self.source.close()

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- what the routes and the admin RPC ask of it -------------------------------
    async def refresh_all(self) -> None:
        """Reload every definition (see :class:`~app.catalog.CatalogFollower`)."""
        await self.follower.refresh_all()

    async def refresh_extension(self, extension_id: str, owner: str = PLATFORM) -> None:
        """Reload one extension now; concurrent requests for it share one reload."""
        await self.follower.refresh_extension(extension_id, owner)

    def readiness(self) -> list[str]:
        """Reasons this process should not receive traffic; empty when ready."""
        return self.follower.readiness() or self.fleet.readiness()  # one cause, said once

    def describe(self, visible_to: str | None = None) -> list[ExtensionView]:
        """Every loaded extension with its state (see :class:`Listing`); ``visible_to``:
        only what that tenant may call."""
        return self.listing(visible_to)


def _share_through(fleet: Fleet) -> Share:
    """A rollback decided here, written for the fleet (or its clearing, removed)."""

    async def share(key: tuple[str, str], record: RollbackRecord | None) -> None:
        if record is None:
            await fleet.rollbacks.remove(*key)
            return
        await fleet.rollbacks.write(
            SharedRollback(
                owner=key[0],
                extension_id=key[1],
                from_version=record.from_version,
                to_version=record.to_version,
                reason=record.reason,
                at=record.at,
            )
        )

    return share


def _follower_of(rollouts: Rollouts) -> Callable[[dict[tuple[str, str], SharedRollback]], None]:
    """What the fleet's listing hands the rollouts: its stored rollbacks."""

    def follow(shared: dict[tuple[str, str], SharedRollback]) -> None:
        rollouts.follow(
            {
                key: RollbackRecord(r.from_version, r.to_version, r.reason, r.at)
                for key, r in shared.items()
            }
        )

    return follow
