"""Logging, metrics and tracing setup: leaves that any stage may import."""

from app.telemetry.logging import configure_logging, get_logger

__all__ = ["configure_logging", "get_logger"]
