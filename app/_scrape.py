"""What ``/metrics`` reads from the runtime's parts at scrape time.

Counters that already live in the module store, executor, bridge, breakers and
reloaders are exported from where they are, not mirrored on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from app.controls import PLATFORM_OWNER, BreakerState

if TYPE_CHECKING:
    from app.runtime import Runtime

# The dashboard's encoding: 0 closed, 1 half-open, 2 open.
_BREAKER_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


def scrape(runtime: Runtime) -> Iterable[tuple[str, str, str, list[str], Any]]:
    """Families for :class:`app.telemetry.ScrapeCollector`."""
    stats = runtime.modules.stats
    for name, value, doc in (
        ("module_cache_hits", stats.hits, "Compiled modules served from memory."),
        ("module_cache_misses", stats.misses, "Lookups that missed the memory cache."),
        ("module_cache_disk_hits", stats.disk_hits, "Precompiled modules loaded from disk."),
        ("module_cache_compiles", stats.compiles, "Modules compiled."),
        ("module_downloads", stats.downloads, "Module blobs read from storage."),
        ("integrity_failures", stats.integrity_failures, "Blobs that failed their digest."),
        ("executor_rejections", runtime.executor.rejections, "Calls refused as OVERLOADED."),
        (
            "host_paced_calls",
            runtime.engine.pacer.slots,
            "Host-function calls of guests past their allowance, paced process-wide.",
        ),
    ):
        yield "counter", name, doc, [], [([], float(value))]
    yield (
        "gauge",
        "executor_queue_depth",
        "Invocations admitted to the sandbox pool (running plus waiting).",
        [],
        [([], float(runtime.executor.in_flight))],
    )
    breakers = runtime.breakers.states()
    yield (
        "gauge",
        "breaker_state",
        "Version-wide circuit breaker (every tenant): 0 closed, 1 half-open, 2 open.",
        ["owner", "extension", "version"],
        [
            ([o or PLATFORM_OWNER, e, v], float(_BREAKER_VALUE[state]))
            for (o, e, v), (state, _) in breakers.items()
        ],
    )
    yield (
        "gauge",
        "breaker_open_tenants",
        "Tenants whose own circuit breaker for the version is open or half-open.",
        ["owner", "extension", "version"],
        [([o or PLATFORM_OWNER, e, v], float(n)) for (o, e, v), (_, n) in breakers.items()],
    )
    yield (
        "counter",
        "host_calls",
        "Guest host calls by target and outcome.",
        ["service", "method", "outcome"],
        [([s, m, o], float(n)) for (s, m, o), n in runtime.host_bridge.counts.snapshot().items()],
    )
    yield (
        "counter",
        "config_reload_failures",
        "Operator files that failed to reload (the last good version stays in force).",
        ["file"],
        [
            (["policy"], float(runtime.policy.reload_failures)),
            (["kill_switches"], float(runtime.controls.file.reload_failures)),
            (["hostcall_keys"], float(runtime.host_bridge.signer.reload_failures)),
        ],
    )
    per_tenant = runtime.settings.metrics_tenant_label
    limited = runtime.rate_limits.rejections
    yield (
        "counter",
        "rate_limited",
        "Calls refused as OVERLOADED by a tenant's rate limit (by tenant with the tenant label).",
        ["tenant"] if per_tenant else [],
        [([t], float(n)) for t, n in limited.items()]
        if per_tenant
        else [([], float(sum(limited.values())))],
    )
    yield (
        "counter",
        "rate_limit_held",
        "Refusals held (rate_limit_hold_s) before they were answered.",
        [],
        [([], float(runtime.rate_limits.held_total))],
    )
    yield (
        "counter",
        "tenant_turn_refusals",
        "Calls refused as OVERLOADED because their tenant had too many in progress and waiting.",
        [],
        [([], float(runtime.gate.refusals))],
    )
    yield (
        "gauge",
        "tenant_turns_waiting",
        "Calls waiting for one of their tenant's turns.",
        [],
        [([], float(runtime.gate.waiting()))],
    )
    yield (
        "gauge",
        "rate_limit_holding",
        "Refusals being held right now (capped per tenant and in all).",
        [],
        [([], float(runtime.rate_limits.holding))],
    )
    yield (
        "gauge",
        "catalog_definitions",
        "Extension versions loaded in the catalog.",
        [],
        [([], float(sum(len(v) for _, v in runtime.catalog.extensions().values())))],
    )
