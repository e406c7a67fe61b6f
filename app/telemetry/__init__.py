"""Logging, metrics and tracing setup: leaves that any stage may import."""

from app.telemetry._logging import configure_logging, get_logger
from app.telemetry._metrics import (
    Family,
    InvocationMetrics,
    MetricSource,
    ScrapeCollector,
    exposition,
    register,
    single,
)
from app.telemetry._sampling import LogSampler
from app.telemetry._tracing import NO_SPAN, configure_tracing, tracer, tracing_installed

__all__ = [
    "NO_SPAN",
    "Family",
    "InvocationMetrics",
    "LogSampler",
    "MetricSource",
    "ScrapeCollector",
    "configure_logging",
    "configure_tracing",
    "exposition",
    "get_logger",
    "register",
    "single",
    "tracer",
    "tracing_installed",
]
