"""The per-invocation series: counted in plain integers, turned into families at scrape.

Every call adds to four series (its count, its duration, its fuel, its peak
memory). Through prometheus-client's children that was four method calls
with a lock each and a Python loop over the buckets: ~3 µs of a ~250 µs echo
call on an idle core, more between the other work of a busy one. Here a call
adds to slotted totals found with one dict lookup (``bisect`` in C picks the
bucket), and the families are built from those totals when ``/metrics`` is
scraped, which is rare next to calls.

Names, labels, bucket bounds and values are those the prometheus-client
metrics had (the chart's alerts and dashboards read them); the
``*_created`` samples are not written (nothing reads them, and Prometheus
ignores them unless asked).

Series are added on the event loop only (the outer pipeline layer runs
there); a scrape on another thread reads integers and floats that only grow,
so at worst it sees a call counted in one series and not yet in the next.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from app.telemetry._metrics import PREFIX

__all__ = ["DURATION_BUCKETS", "MEMORY_BUCKETS", "InvocationMetrics"]

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


class _Histogram:
    """One labelled histogram: a count per bucket (the last is +Inf) and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0


class _Total:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0


class _Series:
    """What one label set of a call adds to: its own count and the shared series."""

    __slots__ = ("count", "duration", "fuel", "memory")

    def __init__(self, duration: _Histogram, fuel: _Total, memory: _Histogram) -> None:
        self.count = 0
        self.duration = duration
        self.fuel = fuel
        self.memory = memory


Labels = tuple[str, ...]


class InvocationMetrics(Collector):
    """Per-invocation series, observed once per call and exported from ``registry``."""

    def __init__(self, registry: CollectorRegistry, *, tenant_label: bool) -> None:
        self.tenant_label = tenant_label
        self._series: dict[Labels, _Series] = {}
        """By (owner, extension, version, tier, outcome, tenant or "")."""
        self._durations: dict[Labels, _Histogram] = {}
        """By (owner, extension, version, tier)."""
        self._fuel: dict[Labels, _Total] = {}
        """By (owner, extension, version), as the memory histograms."""
        self._memory: dict[Labels, _Histogram] = {}
        registry.register(self)

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
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = self._new_series(owner, extension, version, tier)
        series.count += 1
        duration = series.duration
        duration.counts[bisect_left(DURATION_BUCKETS, seconds)] += 1
        duration.total += seconds
        if fuel:
            series.fuel.value += fuel
        if peak_memory:
            memory = series.memory
            memory.counts[bisect_left(MEMORY_BUCKETS, peak_memory)] += 1
            memory.total += peak_memory

    def _new_series(self, owner: str, extension: str, version: str, tier: str) -> _Series:
        version_key = (owner, extension, version)
        duration = self._durations.get((*version_key, tier))
        if duration is None:
            duration = self._durations[(*version_key, tier)] = _Histogram(DURATION_BUCKETS)
        fuel = self._fuel.get(version_key)
        if fuel is None:
            fuel = self._fuel[version_key] = _Total()
        memory = self._memory.get(version_key)
        if memory is None:
            memory = self._memory[version_key] = _Histogram(MEMORY_BUCKETS)
        return _Series(duration, fuel, memory)

    # -- scrape -------------------------------------------------------------------
    def collect(self) -> Iterable[Metric]:
        version_labels = ["owner", "extension", "version"]
        invocations = CounterMetricFamily(
            f"{PREFIX}_invocations",
            "Invocations by owner (a tenant, or _platform), extension, version, tier and "
            "outcome (ok, an error kind, or cancelled when the caller left first).",
            labels=[*version_labels, "tier", "outcome", *(["tenant"] if self.tenant_label else [])],
        )
        for key, series in list(self._series.items()):
            invocations.add_metric(list(key if self.tenant_label else key[:5]), series.count)
        yield invocations
        duration = HistogramMetricFamily(
            f"{PREFIX}_invocation_duration_seconds",
            "Time inside the runtime per invocation.",
            labels=[*version_labels, "tier"],
        )
        for key, histogram in list(self._durations.items()):
            _add(duration, key, histogram, DURATION_BUCKETS)
        yield duration
        fuel = CounterMetricFamily(
            f"{PREFIX}_fuel_consumed", "Fuel consumed by guests.", labels=version_labels
        )
        for key, total in list(self._fuel.items()):
            fuel.add_metric(list(key), total.value)
        yield fuel
        memory = HistogramMetricFamily(
            f"{PREFIX}_invocation_peak_memory_bytes",
            "Peak guest linear memory per invocation.",
            labels=version_labels,
        )
        for key, histogram in list(self._memory.items()):
            _add(memory, key, histogram, MEMORY_BUCKETS)
        yield memory


def _add(
    family: HistogramMetricFamily, key: Labels, histogram: _Histogram, bounds: tuple[float, ...]
) -> None:
    """One labelled histogram as cumulative buckets, as the exposition format has them."""
    counts = list(histogram.counts)  # one snapshot for the buckets and the count
    buckets: list[tuple[str, float]] = []
    cumulative = 0
    for le, count in zip(_les(bounds), counts, strict=True):
        cumulative += count
        buckets.append((le, cumulative))
    family.add_metric(list(key), buckets, histogram.total)


def _les(bounds: tuple[float, ...]) -> list[str]:
    """The ``le`` labels, spelled as prometheus-client spells them, ``+Inf`` last."""
    return [floatToGoString(bound) for bound in (*bounds, float("inf"))]  # type: ignore[no-untyped-call]
