"""``ameide.host_config``: the definition's static ``config``, handed to the guest as JSON."""

from __future__ import annotations

import wasmtime

from app.errors import ErrorKind
from app.sandbox._hostfuncs._marshal import NO_RESPONSE, respond
from app.sandbox._state import current
from app.telemetry import get_logger

__all__ = ["host_config"]

_log = get_logger("app.sandbox")


def host_config(caller: wasmtime.Caller) -> int:
    """``host_config() -> i64``: the definition's ``config`` as JSON, ``ptr << 32 | len``.

    Written through the guest's ``alloc`` like a host-call response; ``-1``
    when the guest has no ``alloc``.
    """
    state = current()
    if state is None:
        return NO_RESPONSE
    try:
        return respond(caller, state, state.config_json, "host_config")
    except Exception:  # noqa: BLE001 - must not unwind into wasmtime
        _log.exception("host_config failed")
        state.stop(ErrorKind.INTERNAL, "host_config failed")
        return NO_RESPONSE
