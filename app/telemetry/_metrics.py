"""Prometheus metrics.

prometheus-client over the OpenTelemetry exporter: it is the smaller
dependency, its text format is what the ServiceMonitor scrapes, the series
every call adds to are plain totals read at scrape (``_invocations``), and
state that already
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
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "PREFIX",
    "Family",
    "MetricSource",
    "ScrapeCollector",
    "exposition",
    "register",
    "single",
]

PREFIX = "extensions_runtime"


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
