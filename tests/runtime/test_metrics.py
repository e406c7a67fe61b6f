"""/metrics: each part exports its own families, once, from one registry."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from app.runtime import Runtime
from app.settings import Settings
from app.telemetry import exposition

# Every family read at scrape time, by the part that owns it.
SCRAPED = {
    "catalog_definitions": "gauge",  # the catalog
    "module_cache_hits": "counter",  # the module store
    "module_cache_misses": "counter",
    "module_cache_disk_hits": "counter",
    "module_cache_compiles": "counter",
    "module_downloads": "counter",
    "integrity_failures": "counter",
    "host_paced_calls": "counter",  # the engine
    "executor_rejections": "counter",  # the executor
    "executor_queue_depth": "gauge",
    "breaker_state": "gauge",  # the breakers
    "breaker_open_tenants": "gauge",
    "rate_limited": "counter",  # the rate limiter
    "rate_limit_held": "counter",
    "rate_limit_holding": "gauge",
    "tenant_turn_refusals": "counter",  # the tenant turns
    "tenant_turns_waiting": "gauge",
    "host_calls": "counter",  # the host-call bridge
    "config_reload_failures": "counter",  # the operator files
}


def _types(text: str) -> Counter[tuple[str, str]]:
    found: Counter[tuple[str, str]] = Counter()
    for line in text.splitlines():
        if line.startswith("# TYPE extensions_runtime_"):
            _, _, name, kind = line.split()
            name = name.removeprefix("extensions_runtime_")
            if kind == "counter":
                name = name.removesuffix("_total")
            found[name, kind] += 1
    return found


async def test_every_part_exports_its_families_once(tmp_path: Path) -> None:
    async with Runtime(Settings(extensions_dir=tmp_path, catalog_poll_interval_s=0)) as runtime:
        types = _types(exposition(runtime.registry).decode())
    for name, kind in SCRAPED.items():
        assert types[name, kind] == 1, name
    assert all(count == 1 for count in types.values())
    assert {"invocations", "invocation_duration_seconds"} <= {name for name, _ in types}


async def test_reload_failures_are_labelled_by_file(tmp_path: Path) -> None:
    policy = tmp_path / "tiers.yaml"
    policy.write_text("tiers: [not, a, mapping]\n")
    runtime = Runtime(Settings(extensions_dir=tmp_path, policy_file=policy))
    text = exposition(runtime.registry).decode()
    assert 'extensions_runtime_config_reload_failures_total{file="policy"} 1.0' in text
    assert 'extensions_runtime_config_reload_failures_total{file="kill_switches"} 0.0' in text
    await runtime.close()
