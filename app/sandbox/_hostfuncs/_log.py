"""``ameide.host_log``: one guest log line, capped by the invocation's log budget."""

from __future__ import annotations

import time

import wasmtime

from app.errors import ErrorKind
from app.invocation import LogLevel
from app.sandbox._hostfuncs._marshal import read
from app.sandbox._state import current
from app.telemetry import get_logger

__all__ = ["host_log"]

_log = get_logger("app.sandbox")


def host_log(caller: wasmtime.Caller, level: int, ptr: int, length: int) -> None:
    """``host_log(level, ptr, len)``: one guest log line, capped by the log budget."""
    state = current()
    if state is None:
        return
    started = time.perf_counter()
    try:
        length &= 0xFFFFFFFF
        if state.logs_truncated or length > state.log_budget():
            state.truncate_logs()
            return
        raw = read(caller, ptr, length)
        if raw is None:
            state.stop(ErrorKind.TRAP, "host_log: message is outside guest memory")
            return
        state.log(LogLevel(level) if 1 <= level <= 4 else LogLevel.INFO, raw)
    except Exception:  # noqa: BLE001 - must not unwind into wasmtime
        _log.exception("host_log failed")
        state.stop(ErrorKind.INTERNAL, "host_log failed")
    finally:
        state.pace(started)
