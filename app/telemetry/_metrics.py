"""Prometheus metrics.

prometheus-client over the OpenTelemetry exporter: it is the smaller
dependency on the hot path (one lock-free-ish counter increment per series),
its text format is what the ServiceMonitor scrapes, and state that already
lives elsewhere (cache counters, queue depth, breaker states, reload
failures) is read at scrape time instead of being mirrored on every call:
each part describes its own :class:`Family` list and the wiring registers it.
Each app gets its own registry so tests can run several.

Series carry the extension's ``owner`` (its tenant, or ``_platform``): its
values come from the published catalog, never from callers, so it is bounded
by what Transformation publishes. The ``tenant`` (caller) label is off by
default: with thousands of tenants it multiplies every series.
``EXTENSIONS_RUNTIME_METRICS_TENANT_LABEL=true`` turns it on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "PREFIX",
    "Family",
    "InvocationMetrics",
    "MetricSource",
    "ScrapeCollector",
    "exposition",
    "register",
    "single",
]

PREFIX = "extensions_runtime"
# Sub-millisecond resolution: a warm pure call is ~100 µs.
DURATION_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
MEMORY_BUCKETS = tuple(float(2**n) for n in range(16, 29, 2))  # 64 KiB .. 256 MiB


class InvocationMetrics:
    """Per-invocation series, observed once per call."""

    def __init__(self, registry: CollectorRegistry, *, tenant_label: bool) -> None:
        self.tenant_label = tenant_label
        self._children: dict[tuple[str, ...], tuple[Any, Any, Any, Any]] = {}
        labels = ["owner", "extension", "version", "tier", "outcome"] + (
            ["tenant"] if tenant_label else []
        )
        self.invocations = Counter(
            f"{PREFIX}_invocations",
            "Invocations by owner (a tenant, or _platform), extension, version, tier and "
            "outcome (ok, an error kind, or cancelled when the caller left first).",
            labels,
            registry=registry,
        )
        self.duration = Histogram(
            f"{PREFIX}_invocation_duration_seconds",
            "Time inside the runtime per invocation.",
            ["owner", "extension", "version", "tier"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.fuel = Counter(
            f"{PREFIX}_fuel_consumed",
            "Fuel consumed by guests.",
            ["owner", "extension", "version"],
            registry=registry,
        )
        self.memory = Histogram(
            f"{PREFIX}_invocation_peak_memory_bytes",
            "Peak guest linear memory per invocation.",
            ["owner", "extension", "version"],
            buckets=MEMORY_BUCKETS,
            registry=registry,
        )

    def observe(
        self,
        *,
        owner: str,
        extension: str,
        version: str,
        tier: str,
        outcome: str,
        tenant: str,
        seconds: float,
        fuel: int,
        peak_memory: int,
    ) -> None:
        key = (owner, extension, version, tier, outcome, tenant if self.tenant_label else "")
        children = self._children.get(key)
        if children is None:
            # labels() hashes and locks on every call (~7 µs for four series):
            # the children are looked up once per label set and kept.
            values = [owner, extension, version, tier, outcome]
            children = (
                self.invocations.labels(*values, *([tenant] if self.tenant_label else [])),
                self.duration.labels(owner, extension, version, tier),
                self.fuel.labels(owner, extension, version),
                self.memory.labels(owner, extension, version),
            )
            self._children[key] = children
        invocations, duration, fuel_counter, memory = children
        invocations.inc()
        duration.observe(seconds)
        if fuel:
            fuel_counter.inc(fuel)
        if peak_memory:
            memory.observe(peak_memory)


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family read at scrape time, from the part whose state it is.

    Parts describe their own families in plain data (no prometheus types), and
    the wiring registers each part's ``metric_families`` with a
    :class:`ScrapeCollector`; nothing reads another part's counters.
    """

    kind: Literal["counter", "gauge"]
    name: str
    """Without the ``extensions_runtime_`` prefix (and a counter's ``_total``)."""
    doc: str
    samples: Sequence[tuple[Sequence[str], float]]
    """``(label values, value)`` pairs; one ``((), value)`` for an unlabelled family."""
    labels: Sequence[str] = ()


def single(kind: Literal["counter", "gauge"], name: str, doc: str, value: float) -> Family:
    """An unlabelled family with one value."""
    return Family(kind, name, doc, [((), float(value))])


class MetricSource(Protocol):
    """A part that owns metric families."""

    def metric_families(self) -> Iterable[Family]: ...


class ScrapeCollector(Collector):
    """Turns a part's :class:`Family` list into prometheus families at scrape time."""

    def __init__(self, read: Callable[[], Iterable[Family]]) -> None:
        self._read = read

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        for found in self._read():
            family: CounterMetricFamily | GaugeMetricFamily
            labels = list(found.labels)
            if found.kind == "counter":
                family = CounterMetricFamily(f"{PREFIX}_{found.name}", found.doc, labels=labels)
            else:
                family = GaugeMetricFamily(f"{PREFIX}_{found.name}", found.doc, labels=labels)
            for values, value in found.samples:
                family.add_metric(list(values), value)
            yield family


def register(registry: CollectorRegistry, *sources: MetricSource) -> None:
    """Export each source's families from ``registry``, read when it is scraped."""
    for source in sources:
        registry.register(ScrapeCollector(source.metric_families))


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus text format."""
    return generate_latest(registry)
