"""Structured logging with structlog.

Log lines are JSON in production so they can be indexed by tenant, extension
and request id; ``console`` is for a person at a terminal.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger"]


class _PyvoyRecvFutureNoise(logging.Filter):
    """Drops the one harmless error pyvoy 1.3.0 logs for every gRPC request.

    Its ``RecvFutureExecutor`` sets a result on an already-cancelled future and
    asyncio reports the ``InvalidStateError``. Only that exact record is
    dropped; every other asyncio error still reaches the log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, Exception) or type(exc).__name__ != "InvalidStateError":
            return True
        return "RecvFutureExecutor" not in record.getMessage()


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Route structlog and stdlib logging to stderr in one format."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer, foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name]
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("asyncio").addFilter(_PyvoyRecvFutureNoise())


def get_logger(name: str) -> Any:
    """A lazy structlog logger tagged with ``component``.

    Lazy matters: modules create loggers at import, before ``configure_logging``
    runs, and must still honour the configured level and format.
    """
    return structlog.get_logger(component=name)
