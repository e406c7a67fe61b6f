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

The same bookkeeping picks the executor lane of pooled runs (see
``app.sandbox._executor``). A module that imports a function that can block (a
host call, a sleep) goes to the ``io`` lane from its first run: how long it
waits is up to another service, and `make reliability` showed a hanging
upstream filling the short lane with such calls before the first of them had
finished and been measured; if its runs use more than ``LONG_RUN_US`` of CPU
on average it goes to the ``long`` lane instead, so a guest cannot import
``host_call`` to get the io lane's many threads for a computation. Any other
module starts in the ``short`` lane, and moves to ``long`` once its runs use
more than ``LONG_RUN_US`` of CPU on average (one long run moves it: the
average jumps by a fifth of that run) or it overran its inline slice. CPU
time, not wall-clock time: on a saturated machine a ~100 µs echo descheduled
or waiting for the GIL held its thread for 100 ms, was judged long, and then
queued behind the looping tenants it shared the long lane with (`make
reliability` saw good calls wait seconds and be refused as OVERLOADED).

The threshold (``_INLINE_THRESHOLD_US``, 1.5 ms of CPU) sits below the 2 ms
slice but well above a small guest's cost: at 500 µs, a 1 KiB echo whose runs
took 300-750 µs of CPU in a server sharing its core with Envoy (p50 400 µs)
hovered around it, and a third of its calls took the pool, whose hop cost a
dozen context switches and ~1 ms of CPU each (1.7 ms per call at 32 in flight,
1.4 ms with the higher threshold; 2.75 -> 1.2 ms sequentially).

A module's first run does not count towards its CPU average: it pays one-time
costs (page faults on fresh code and memory, lazily built tables) that made a
~100 µs echo look like 9 ms and kept it off the fast path for a dozen calls.
The inline slice still bounds that first run.
"""

from __future__ import annotations

import threading

from app.sandbox._engine import CompiledModule
from app.sandbox._executor import Lane
from app.settings import InlineConfig

__all__ = [
    "LONG_RUN_US",
    "FastPath",
]

LONG_RUN_US = 20_000.0
"""Average wall time per run above which a module's pooled runs use the ``long`` lane."""
_NEW_RUNS = 3
"""Runs after which an overrun is taken for a hiccup rather than the module's nature."""
_BLOCKING_IMPORTS = {("ameide", "host_call"), ("wasi_snapshot_preview1", "poll_oneoff")}


class FastPath:
    """Decides per compiled module whether it may run inline, from what it did before.

    The history is kept on the module itself (``CompiledModule.runs``), so it is
    dropped with the module when the cache evicts it.
    """

    def __init__(self, config: InlineConfig) -> None:
        self.threshold_us = config.threshold_us
        self.slice_s = config.slice_ms / 1000.0
        self._lock = threading.Lock()
        self.inline_runs = 0
        self.overruns = 0

    @staticmethod
    def _is_pure(compiled: CompiledModule) -> bool:
        stats = compiled.runs
        if stats.pure is None:
            # A component always imports the whole host interface, host calls
            # included, so it never counts as pure.
            module = compiled.module
            stats.pure = module is not None and not any(
                (imp.module, imp.name) in _BLOCKING_IMPORTS for imp in module.imports
            )
        return stats.pure

    def eligible(self, compiled: CompiledModule) -> bool:
        if self.threshold_us <= 0 or not self._is_pure(compiled):
            return False
        return (compiled.runs.ewma_us or 0.0) < self.threshold_us

    def observe(self, compiled: CompiledModule, elapsed_us: float) -> None:
        """One finished run (or failed one) and the CPU time it used."""
        stats = compiled.runs
        with self._lock:
            stats.runs += 1
            if stats.runs > 1:  # the first run's one-time costs are not its speed
                previous = stats.ewma_us
                stats.ewma_us = (
                    elapsed_us if previous is None else 0.8 * previous + 0.2 * elapsed_us
                )
            used = stats.cpu_us
            stats.cpu_us = elapsed_us if used is None else 0.8 * used + 0.2 * elapsed_us

    def lane(self, compiled: CompiledModule, *, may_call_host: bool = True) -> Lane:
        """The executor lane for a pooled run of ``compiled``.

        ``may_call_host``: the definition grants host calls. A component
        imports the host call whether or not it may use it, and cannot
        otherwise wait (its clock waits are refused), so without a grant it is
        placed like a pure module: the ``io`` lane's threads run at a lower
        priority, and on a busy core a Python component there waited ~90 ms
        for a 5 ms call.
        """
        long = (compiled.runs.cpu_us or 0.0) > LONG_RUN_US
        can_wait = not self._is_pure(compiled)
        if compiled.component is not None:
            can_wait = may_call_host
        if can_wait:
            return "long" if long else "io"
        return "long" if long else "short"

    def overran(self, compiled: CompiledModule) -> None:
        """Send it to the pool until its pool runs show it is fast again (a hiccup
        such as a GC pause must not banish a fast module for good)."""
        stats = compiled.runs
        with self._lock:
            stats.ewma_us = max(self.slice_s * 1e6, 4.0 * self.threshold_us)
            if stats.runs <= _NEW_RUNS:
                # Nothing known yet: its re-run may compute until its deadline, so
                # not among short guests. A module with a record of short runs
                # keeps its lane: one slow run there is a hiccup (a GC pause, the
                # machine busy), and the long lane would queue it behind real
                # computations for seconds.
                stats.cpu_us = max(stats.cpu_us or 0.0, 2.0 * LONG_RUN_US)
            self.overruns += 1
