"""Structured logging with structlog.

Log lines are JSON in production so they can be indexed by tenant, extension
and request id; ``console`` is for a person at a terminal.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar, Token
from typing import Any

import structlog

__all__ = [
    "bind_call_fields",
    "bound_fields",
    "configure_logging",
    "get_logger",
    "reset_call_fields",
]

_call_fields: ContextVar[Mapping[str, object] | None] = ContextVar("call_log_fields", default=None)
"""The fields of the invocation being served, one mapping in one context variable.

structlog's ``bind_contextvars`` makes and sets a context variable per field
(and ``reset_contextvars`` resets each): for the six fields every call binds,
that was a visible share of a small call's CPU. One variable holding the
whole mapping is set and reset once.
"""


def bind_call_fields(fields: Mapping[str, object]) -> Token[Mapping[str, object] | None]:
    """Make ``fields`` part of every log line written in this context until reset."""
    return _call_fields.set(fields)


def reset_call_fields(token: Token[Mapping[str, object] | None]) -> None:
    """Undo :func:`bind_call_fields`."""
    _call_fields.reset(token)


def bound_fields() -> dict[str, object]:
    """The fields a log line written here would carry, with the same precedence:
    structlog's context variables over the call's (see the processors' order)."""
    return {**(_call_fields.get() or {}), **structlog.contextvars.get_contextvars()}


def _merge_call_fields(_: Any, __: str, event: MutableMapping[str, Any]) -> Any:
    """A line's own keys win over the call's, as with ``merge_contextvars``."""
    fields = _call_fields.get()
    if fields:
        for key, value in fields.items():
            event.setdefault(key, value)
    return event


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
        _merge_call_fields,
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
