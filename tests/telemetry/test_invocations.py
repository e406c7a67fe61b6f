"""The per-invocation series: plain totals per call, the exposition format at scrape."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from app.telemetry import InvocationMetrics, exposition

ECHO = {"owner": "_platform", "extension": "echo", "version": "1.0.0"}


def _observe(metrics: InvocationMetrics, **overrides: object) -> None:
    call: dict[str, object] = {
        **ECHO,
        "tier": "pure",
        "outcome": "ok",
        "tenant": "t1",
        "seconds": 0.0003,
        "fuel": 100,
        "peak_memory": 65536,
    }
    call.update(overrides)
    metrics.observe(**call)  # type: ignore[arg-type]


def _samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = exposition(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def test_counts_buckets_sums_and_totals_as_the_exposition_format_has_them() -> None:
    registry = CollectorRegistry()
    metrics = InvocationMetrics(registry, tenant_label=False)
    _observe(metrics, seconds=0.00005)  # below the first bound
    _observe(metrics, seconds=0.0001)  # on it: "le" is inclusive
    _observe(metrics, seconds=0.0003, peak_memory=3 * 65536)
    _observe(metrics, seconds=20.0, fuel=0, peak_memory=0)  # beyond the last: +Inf only
    _observe(metrics, outcome="timeout", seconds=0.002)
    samples = _samples(registry)

    name = "extensions_runtime_invocations_total"
    assert samples[_key(name, **ECHO, tier="pure", outcome="ok")] == 4
    assert samples[_key(name, **ECHO, tier="pure", outcome="timeout")] == 1

    duration = "extensions_runtime_invocation_duration_seconds"
    bucket = f"{duration}_bucket"
    assert samples[_key(bucket, **ECHO, tier="pure", le="0.0001")] == 2
    assert samples[_key(bucket, **ECHO, tier="pure", le="0.0005")] == 3
    assert samples[_key(bucket, **ECHO, tier="pure", le="0.0025")] == 4
    assert samples[_key(bucket, **ECHO, tier="pure", le="10.0")] == 4
    assert samples[_key(bucket, **ECHO, tier="pure", le="+Inf")] == 5
    assert samples[_key(f"{duration}_count", **ECHO, tier="pure")] == 5
    assert abs(samples[_key(f"{duration}_sum", **ECHO, tier="pure")] - 20.00245) < 1e-9

    assert samples[_key("extensions_runtime_fuel_consumed_total", **ECHO)] == 400
    memory = "extensions_runtime_invocation_peak_memory_bytes"
    assert samples[_key(f"{memory}_bucket", **ECHO, le="65536.0")] == 3
    assert samples[_key(f"{memory}_bucket", **ECHO, le="262144.0")] == 4
    assert samples[_key(f"{memory}_count", **ECHO)] == 4  # a call with no memory is not one
    assert samples[_key(f"{memory}_sum", **ECHO)] == 6 * 65536
    assert not any("tenant" in dict(labels) for _, labels in samples)


def test_the_tenant_label_only_when_asked_and_versions_apart() -> None:
    registry = CollectorRegistry()
    metrics = InvocationMetrics(registry, tenant_label=True)
    _observe(metrics, tenant="t1")
    _observe(metrics, tenant="t2")
    _observe(metrics, tenant="t2", version="2.0.0")
    samples = _samples(registry)
    name = "extensions_runtime_invocations_total"
    assert samples[_key(name, **ECHO, tier="pure", outcome="ok", tenant="t1")] == 1
    assert samples[_key(name, **ECHO, tier="pure", outcome="ok", tenant="t2")] == 1
    two = {**ECHO, "version": "2.0.0"}
    assert samples[_key(name, **two, tier="pure", outcome="ok", tenant="t2")] == 1
    # The duration, fuel and memory series are per version, whoever called.
    duration = "extensions_runtime_invocation_duration_seconds_count"
    assert samples[_key(duration, **ECHO, tier="pure")] == 2
    assert samples[_key(duration, **two, tier="pure")] == 1
    assert samples[_key("extensions_runtime_fuel_consumed_total", **ECHO)] == 200


def test_every_family_is_there_before_the_first_call() -> None:
    """As prometheus-client's metrics were: a dashboard finds the names at once."""
    registry = CollectorRegistry()
    InvocationMetrics(registry, tenant_label=False)
    text = exposition(registry).decode()
    for name, kind in (
        ("extensions_runtime_invocations_total", "counter"),
        ("extensions_runtime_invocation_duration_seconds", "histogram"),
        ("extensions_runtime_fuel_consumed_total", "counter"),
        ("extensions_runtime_invocation_peak_memory_bytes", "histogram"),
    ):
        assert f"# TYPE {name} {kind}" in text
