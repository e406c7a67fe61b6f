"""Host functions for the ``component`` ABI: the ``ameide:extension/host`` interface and
the WASI preview 2 functions the runtime replaces.

The component's WASI comes from wasmtime (``add_wasip2``) with an empty
context: no preopens, no environment, no arguments, no network (wasmtime denies
every socket address and name lookup unless allowed, and the runtime never
allows them). Three things are replaced by shadowing them in the linker:

* ``wasi:clocks/monotonic-clock`` ``subscribe-*``: wasmtime's would block the
  worker thread in Rust for as long as the guest asks, out of reach of the
  epoch deadline, so a wait stops the guest with TIMEOUT instead (an extension
  is a function of its input; it has nothing to wait for);
* the clocks' ``now`` and ``resolution``, virtual unless the tier grants real ones;
* ``wasi:random/*``: the invocation's seeded keystream unless the tier grants
  real randomness.

Shadows are defined for every WASI 0.2 minor version the allow-list accepts
(``app.sandbox._abi.WASI_P2_VERSIONS``), because the linker matches an import's
exact version before any semver-compatible one.

Component host functions are called through wasmtime-py's component trampoline,
which keeps a Python exception in a process-wide variable that the next failing
call on *any* thread re-raises. So, as for the other ABIs, none of these ever
raises a Python exception: a fault is recorded on the invocation and the guest
is stopped through its fuel. Where no value can be returned (a ``pollable``
cannot be made here), a ``wasmtime.WasmtimeError`` traps the guest: the
trampoline passes that type through without the shared variable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import wasmtime
from wasmtime import component

from app.errors import ErrorKind, HostCallRefusal
from app.invocation import LogLevel
from app.sandbox._abi import HOST_INTERFACE, WASI_P2_VERSIONS
from app.sandbox._hostfuncs import _wasi
from app.sandbox._hostfuncs._call import answer
from app.sandbox._hostfuncs._clocks import RANDOM_BUDGET, RANDOM_MAX_CALL
from app.sandbox._state import InvocationState, current
from app.telemetry import get_logger

__all__ = ["define_component"]

_log = get_logger("app.sandbox")

_LEVELS = {"debug": LogLevel.DEBUG, "info": LogLevel.INFO, "warn": LogLevel.WARN}
_NS = 1_000_000_000


def _guarded(name: str, fallback: Any, body: Callable[[InvocationState], Any]) -> Any:
    """Run ``body`` for the current invocation; a fault stops the guest, never raises."""
    state = current()
    if state is None:
        return fallback
    started = time.perf_counter()
    try:
        return body(state)
    except Exception:  # noqa: BLE001 - must not unwind into wasmtime
        _log.exception(f"{name} failed")
        state.stop(ErrorKind.INTERNAL, f"{name} failed")
        return fallback
    finally:
        state.pace(started)


# -- ameide:extension/host -----------------------------------------------------


def _log_line(_store: object, level: str, message: str) -> None:
    def body(state: InvocationState) -> None:
        raw = message.encode("utf-8", errors="replace")
        state.log(_LEVELS.get(level, LogLevel.ERROR), raw)

    _guarded("host.log", None, body)


def _record(**fields: object) -> component.Record:
    """A WIT record value (wasmtime-py lowers any object with the fields' names)."""
    record = component.Record()
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def _error_record(refusal: HostCallRefusal) -> component.Record:
    return _record(kind=refusal.kind.value.replace("_", "-"), message=refusal.message)


def _request(service: str, method: str, body: bytes) -> bytes:
    """The JSON request the bridge validates, as the other ABIs write it themselves.

    ``body`` is spliced in unparsed: the bridge parses the whole request
    strictly (size first), so a body that is not one JSON object is its
    ``invalid-request``, exactly as for a raw guest.
    """
    head = json.dumps({"service": service, "method": method})[:-1].encode()
    return head + b',"body":' + (body or b"{}") + b"}"


def _call(_store: object, service: str, method: str, body: bytes) -> Any:
    """``call(service, method, body) -> result<list<u8>, host-error>``.

    Ok is the answer the other ABIs read, ``{"status": ..., "body": ...}``; Err
    a refusal the guest may handle. An invocation-ending failure stops the
    guest (the value returned then is never seen).
    """
    state = current()
    if state is None:
        return b""
    started = time.perf_counter()
    try:
        result = answer(state, _request(service, method, bytes(body)))
        if isinstance(result, HostCallRefusal):
            return _error_record(result)
        return b"" if result is None else result
    except Exception:  # noqa: BLE001 - must not unwind into wasmtime
        _log.exception("host.call failed")
        state.stop(ErrorKind.INTERNAL, "host.call failed")
        return b""
    finally:
        state.pace(started, holds_gil=False)


def _config(_store: object) -> str:
    return str(_guarded("host.config", "{}", lambda state: state.config_json.decode()))


# -- wasi:clocks and wasi:random -------------------------------------------------


def _datetime(ns: int) -> component.Record:
    seconds, nanoseconds = divmod(ns, _NS)
    return _record(seconds=seconds, nanoseconds=nanoseconds)


def _no_waiting(_store: object, _when: int) -> None:
    state = current()
    if state is not None:
        state.stop(
            ErrorKind.TIMEOUT,
            "the extension tried to wait on a clock; extensions cannot sleep or wait",
        )
    raise wasmtime.WasmtimeError("extensions cannot wait on a clock")


def _virtual_now(clock: int) -> Callable[[object], int]:
    return lambda _store: int(_guarded("clock now", 0, lambda state: state.read_clock(clock)))


def _real_monotonic(_store: object) -> int:
    state = current()
    return 0 if state is None else max(0, time.monotonic_ns() - state.wasi_epoch_ns)


def _random_bytes(_store: object, length: int) -> bytes:
    def body(state: InvocationState) -> bytes:
        if length > RANDOM_MAX_CALL or state.random_used + length > RANDOM_BUDGET:
            state.stop(ErrorKind.TRAP, "random: more bytes than an invocation may draw")
            return b""
        return state.random_bytes(length)

    return bytes(_guarded("random", bytes(min(length, RANDOM_MAX_CALL)), body))


def _random_u64(_store: object) -> int:
    return int.from_bytes(_random_bytes(_store, 8) or bytes(8), "little")


def _seed(_store: object) -> tuple[int, int]:
    return (_random_u64(_store), _random_u64(_store))


def _define_clocks(root: component.LinkerInstance, version: str, *, deterministic: bool) -> None:
    with root.add_instance(f"wasi:clocks/monotonic-clock@{version}") as monotonic:
        if deterministic:
            monotonic.add_func("now", _virtual_now(_wasi.CLOCK_MONOTONIC))
            monotonic.add_func("resolution", lambda _store: 1_000)
        else:
            monotonic.add_func("now", _real_monotonic)
            monotonic.add_func("resolution", lambda _store: 1)
        monotonic.add_func("subscribe-duration", _no_waiting)
        monotonic.add_func("subscribe-instant", _no_waiting)
    if not deterministic:
        return
    now = _virtual_now(_wasi.CLOCK_REALTIME)
    with root.add_instance(f"wasi:clocks/wall-clock@{version}") as wall:
        wall.add_func("now", lambda store: _datetime(now(store)))
        wall.add_func("resolution", lambda _store: _datetime(1_000))
    with root.add_instance(f"wasi:random/random@{version}") as secure:
        secure.add_func("get-random-bytes", _random_bytes)
        secure.add_func("get-random-u64", _random_u64)
    with root.add_instance(f"wasi:random/insecure@{version}") as insecure:
        insecure.add_func("get-insecure-random-bytes", _random_bytes)
        insecure.add_func("get-insecure-random-u64", _random_u64)
    with root.add_instance(f"wasi:random/insecure-seed@{version}") as seed:
        seed.add_func("insecure-seed", _seed)


def define_component(linker: component.Linker, *, deterministic: bool) -> None:
    """WASI preview 2 (locked down, with the replacements above) and the host interface."""
    linker.add_wasip2()
    linker.allow_shadowing = True
    with linker.root() as root:
        with root.add_instance(HOST_INTERFACE) as host:
            host.add_func("log", _log_line)
            host.add_func("call", _call)
            host.add_func("config", _config)
        for version in WASI_P2_VERSIONS:
            _define_clocks(root, version, deterministic=deterministic)
    linker.allow_shadowing = False
