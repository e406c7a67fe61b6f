"""Logging, metrics and tracing setup: leaves that any stage may import."""

from app.telemetry._logging import configure_logging, get_logger
from app.telemetry._metrics import InvocationMetrics, ScrapeCollector, exposition
from app.telemetry._tracing import configure_tracing, tracer

__all__ = [
    "InvocationMetrics",
    "ScrapeCollector",
    "configure_logging",
    "configure_tracing",
    "exposition",
    "get_logger",
    "tracer",
]
