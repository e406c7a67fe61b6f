"""Component instances made just ahead of their call, off the request path.

Why: instantiating a componentize-py guest costs 0.7-2 ms of CPU whatever the
call does (wasmtime resolves thousands of function imports across its 14 core
modules; measured with perf, nothing in the configuration wasmtime-py exposes
moves it), and a Python extension's whole budget is 10 ms. So after a call
of a component, one fresh instance of that version is made on a background
thread, and the next call of it starts with it.

What stays as it was: a spare is used by exactly one call and never given
back, so each call still runs in a store and instance no guest has run in;
only *when* the instance is made moves. A spare is made with the limits and
clock flavour (deterministic or real) of the call that asked for it; a call
with others ignores it and instantiates itself. It is instantiated with the
call's fuel and keeps what is left, so start functions cost the claiming call
what they would have cost it anyway. While it is being made (and until claimed) it answers the C
callbacks through its own target: output dropped, stopped after
``_MAKE_TIMEOUT_S``.

Bounded: at most one spare per (version, limits, flavour) and ``_MAX_SPARES``
in the process, the least recently wanted dropped first; one maker thread,
whose queue holds at most ``_MAX_PENDING`` requests (more are dropped: the
call instantiates itself). Spares hold no tenant data, so tenants share them;
a tenant calling many versions only evicts spares, which costs the next call
an instantiation, as without spares. A version whose spare cannot be made
(its start traps, its memory is over the limit) gets no more spares: its
calls instantiate and report the failure themselves.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import wasmtime
import wasmtime.component

from app.sandbox import _ffi

__all__ = ["Spare", "SpareShape", "Spares", "new_store"]

_MAX_SPARES = 8
_MAX_PENDING = 16
_MAKE_TIMEOUT_S = 5.0
"""Instantiating runs start functions: a spare's stop at the call's fuel or at this."""
_MAX_FAILED = 1024

_MAX_INSTANCES = 64
"""Core instances per component: a componentize-py guest has 14 (libc, libpython...)."""
_MAX_TABLES = 64
_MAX_MEMORIES = 8


@dataclass(frozen=True, slots=True)
class SpareShape:
    """What a spare was made for: a call must match it to take it."""

    component: wasmtime.component.Component
    linker: wasmtime.component.Linker
    """Which clocks and random the guest gets (deterministic or real)."""
    memory_bytes: int
    table_elements: int
    fuel: int
    """The call's fuel: a spare is instantiated with it, so what instantiating
    burnt (start functions) is charged to the call that claims it, exactly as
    if that call had instantiated itself."""


def new_store(engine: wasmtime.Engine, shape: SpareShape, key: int) -> wasmtime.Store:
    """A store for one call of a component, its callbacks reporting to ``key``.

    It has the shape's fuel. WASI is locked down: no preopened
    directories, no environment, no arguments, no network; stdout and stderr
    go to the target ``key``.
    """
    store = _ffi.new_store(engine)
    store.set_fuel(shape.fuel)
    store.set_limits(
        memory_size=shape.memory_bytes,
        table_elements=shape.table_elements,
        instances=_MAX_INSTANCES,
        tables=_MAX_TABLES,
        memories=_MAX_MEMORIES,
    )
    _ffi.watch_epochs(store, key)
    config = wasmtime.WasiConfig()
    _ffi.set_stdio(config, b"", key)
    store.set_wasi(config)
    return store


@dataclass(slots=True, eq=False)
class Spare:
    """A store and instance no guest has run in, and the callback key they report to."""

    store: wasmtime.Store
    instance: wasmtime.component.Instance
    key: int


class _MakingTarget:
    """Answers the C callbacks while a spare is made: nobody reads its output."""

    def __init__(self, memory_bytes: int) -> None:
        self._memory_bytes = memory_bytes
        self._stop_at = time.monotonic() + _MAKE_TIMEOUT_S

    def on_epoch(self, fuel: int | None) -> bool:
        return time.monotonic() < self._stop_at

    def memory_limit(self) -> int:
        return self._memory_bytes

    def on_memory_refused(self, requested: int) -> None:
        return None

    def on_stdout(self, data: bytes) -> int:
        return len(data)

    def on_stderr(self, data: bytes) -> int:
        return len(data)


class Spares:
    """The process's spare component instances and the thread that makes them."""

    def __init__(self, engine: wasmtime.Engine, *, enabled: bool = True) -> None:
        self._engine = engine
        self.enabled = enabled
        """Off: nothing is made, every call instantiates its own (a setting, and the benchmark)."""
        self._ready: OrderedDict[SpareShape, Spare] = OrderedDict()
        self._failed: set[int] = set()
        self._pending: queue.Queue[SpareShape] = queue.Queue(maxsize=_MAX_PENDING)
        self._lock = threading.Lock()
        self._maker: threading.Thread | None = None
        self.made = 0
        self.claimed = 0
        """Counts for tests and the benchmark."""

    def claim(self, shape: SpareShape) -> Spare | None:
        """The spare made for ``shape``, now this caller's alone, or ``None``."""
        with self._lock:
            spare = self._ready.pop(shape, None)
            if spare is not None:
                self.claimed += 1
        return spare

    def is_ready(self, shape: SpareShape) -> bool:
        """Whether a spare of ``shape`` waits to be claimed."""
        with self._lock:
            return shape in self._ready

    def want(self, shape: SpareShape) -> None:
        """Have a spare of ``shape`` made, unless one is ready or on its way.

        Called once the previous call's store is gone: dropping a Python
        guest's store unmaps what it touched, and making a spare at the same
        time would wait on the same memory-map lock.
        """
        if not self.enabled:
            return
        with self._lock:
            if shape in self._ready:
                self._ready.move_to_end(shape)
                return
            if id(shape.component) in self._failed:
                return
            self._start_maker()
        with contextlib.suppress(queue.Full):  # the next call instantiates itself
            self._pending.put_nowait(shape)

    def clear(self) -> None:
        """Drop every ready spare (the engine is closing)."""
        with self._lock:
            dropped = list(self._ready.values())
            self._ready.clear()
        for spare in dropped:
            _ffi.unregister(spare.key)

    def _start_maker(self) -> None:
        if self._maker is None or not self._maker.is_alive():
            self._maker = threading.Thread(
                target=self._make_forever, name="component-spares", daemon=True
            )
            self._maker.start()

    def _make_forever(self) -> None:
        while True:
            self._make_one(self._pending.get())

    def _make_one(self, shape: SpareShape) -> None:
        """Make and shelve one spare. Its own frame: once a caller has claimed the
        spare, no variable of this thread may keep its store alive."""
        with self._lock:
            if shape in self._ready:
                return
        spare = self._make(shape)
        if spare is None:
            return
        dropped = []
        with self._lock:
            self._ready[shape] = spare
            self.made += 1
            while len(self._ready) > _MAX_SPARES:
                dropped.append(self._ready.popitem(last=False)[1])
        for key in [old.key for old in dropped]:
            _ffi.unregister(key)
        # The dropped stores are unmapped when this frame ends, outside the lock.

    def _make(self, shape: SpareShape) -> Spare | None:
        key = _ffi.register(_MakingTarget(shape.memory_bytes))
        try:
            store = new_store(self._engine, shape, key)
            instance = shape.linker.instantiate(store, shape.component)
        except Exception:  # noqa: BLE001 - a trap, a limit, anything: no spares for it
            _ffi.unregister(key)
            with self._lock:
                if len(self._failed) >= _MAX_FAILED:
                    self._failed.clear()
                self._failed.add(id(shape.component))
            return None
        return Spare(store, instance, key)
