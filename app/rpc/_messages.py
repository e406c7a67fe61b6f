"""Wire forms of what an invocation produced, shared by answers and errors."""

from __future__ import annotations

from collections.abc import Iterable

from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb

from app.invocation import LogLine, Metrics

__all__ = ["log_lines", "metrics_message"]


def metrics_message(metrics: Metrics) -> runtime_pb.InvocationMetrics:
    """The wire form of invocation metrics."""
    return runtime_pb.InvocationMetrics(
        duration_us=metrics.duration_us,
        fuel_consumed=metrics.fuel_consumed,
        peak_memory_bytes=metrics.peak_memory_bytes,
        host_calls=metrics.host_calls,
        queue_us=metrics.queue_us,
    )


def log_lines(lines: Iterable[LogLine]) -> list[runtime_pb.LogLine]:
    """Guest log lines in their wire form."""
    return [
        runtime_pb.LogLine(level=runtime_pb.LogLevel(line.level), message=line.message)
        for line in lines
    ]
