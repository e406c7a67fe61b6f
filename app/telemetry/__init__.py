"""Logging, metrics and tracing setup: leaves that any stage may import."""

from app.telemetry._invocations import InvocationMetrics
from app.telemetry._logging import (
    bind_call_fields,
    bound_fields,
    configure_logging,
    get_logger,
    reset_call_fields,
)
from app.telemetry._metrics import (
    Family,
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
    "bind_call_fields",
    "bound_fields",
    "configure_logging",
    "configure_tracing",
    "exposition",
    "get_logger",
    "register",
    "reset_call_fields",
    "single",
    "tracer",
    "tracing_installed",
]
