"""Running short, pure guests on the event-loop thread.

Handing a ~80 µs invocation to a worker thread costs more than the
invocation: the hop and the GIL ping-pong between the loop and the worker
measured ~180 µs here. A module that cannot block (it imports neither
``host_call`` nor ``poll_oneoff``) and has recently finished quickly is run
inline under a short time slice. If it overruns the slice it is stopped by the
epoch like any other guest and re-run on the pool with its full budget; that
is safe because such a guest has no side effects outside its fresh Store. The
module is then treated as slow; every run, inline or pooled, feeds the
moving average that decides, so a long guest rarely costs the loop a slice.
"""

from __future__ import annotations

import threading

from app.sandbox.engine import CompiledModule

_BLOCKING_IMPORTS = {("ameide", "host_call"), ("wasi_snapshot_preview1", "poll_oneoff")}


class FastPath:
    """Decides per compiled module whether it may run inline, from what it did before."""

    def __init__(self, threshold_us: int, slice_ms: float) -> None:
        self.threshold_us = threshold_us
        self.slice_s = slice_ms / 1000.0
        self._lock = threading.Lock()
        self._ewma_us: dict[int, float] = {}
        self._pure: dict[int, bool] = {}
        self.inline_runs = 0
        self.overruns = 0

    def _is_pure(self, compiled: CompiledModule) -> bool:
        key = id(compiled)
        pure = self._pure.get(key)
        if pure is None:
            pure = not any(
                (imp.module, imp.name) in _BLOCKING_IMPORTS for imp in compiled.module.imports
            )
            with self._lock:
                self._pure[key] = pure
        return pure

    def eligible(self, compiled: CompiledModule) -> bool:
        if self.threshold_us <= 0 or not self._is_pure(compiled):
            return False
        return self._ewma_us.get(id(compiled), 0.0) < self.threshold_us

    def observe(self, compiled: CompiledModule, elapsed_us: float) -> None:
        key = id(compiled)
        with self._lock:
            previous = self._ewma_us.get(key)
            self._ewma_us[key] = (
                elapsed_us if previous is None else 0.8 * previous + 0.2 * elapsed_us
            )

    def overran(self, compiled: CompiledModule) -> None:
        """Send it to the pool until its pool runs show it is fast again (a hiccup
        such as a GC pause must not banish a fast module for good)."""
        with self._lock:
            self._ewma_us[id(compiled)] = max(self.slice_s * 1e6, 4.0 * self.threshold_us)
            self.overruns += 1
