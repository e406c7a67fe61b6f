"""FastPath bookkeeping: which guests may run inline, and which executor lane the rest use."""

from __future__ import annotations

from app.sandbox import Abi, SandboxEngine
from app.sandbox._engine import CompiledModule
from app.sandbox._fastpath import LONG_RUN_US, FastPath
from app.settings import InlineConfig
from tests.sandbox import _components, _modules


def _fastpath() -> FastPath:
    return FastPath(InlineConfig(threshold_us=500, slice_ms=2))


def _compiled(engine: SandboxEngine, wasm: bytes) -> CompiledModule:
    return engine.compile(wasm, Abi.RAW)


def test_a_guest_that_can_block_uses_the_io_lane_before_any_run(engine: SandboxEngine) -> None:
    # A hanging upstream must not fill the short lane before the first such call is measured.
    fastpath = _fastpath()
    host_call = _compiled(engine, _modules.HOST_CALL)
    assert fastpath.lane(host_call) == "io"
    assert not fastpath.eligible(host_call)


def test_a_blocking_guest_that_computes_goes_to_the_long_lane(engine: SandboxEngine) -> None:
    # Importing host_call must not buy a computation the io lane's many threads.
    fastpath = _fastpath()
    host_call = _compiled(engine, _modules.HOST_CALL)
    fastpath.observe(host_call, 10 * LONG_RUN_US)
    assert fastpath.lane(host_call) == "long"
    waiting = _compiled(engine, _modules.HOST_CALL)  # compiled again: another module
    fastpath.observe(waiting, 100.0)  # however long it waited
    assert fastpath.lane(waiting) == "io"


def test_a_pure_guest_moves_to_the_long_lane_once_it_computes_long(
    engine: SandboxEngine,
) -> None:
    fastpath = _fastpath()
    echo = _compiled(engine, _modules.ECHO)
    assert fastpath.lane(echo) == "short"
    fastpath.observe(echo, 100.0)
    assert fastpath.lane(echo) == "short"
    fastpath.observe(echo, 10 * LONG_RUN_US)  # e.g. it computed until its deadline
    assert fastpath.lane(echo) == "long"


def test_the_first_run_does_not_count_against_the_fast_path(engine: SandboxEngine) -> None:
    fastpath = _fastpath()
    echo = _compiled(engine, _modules.ECHO)
    fastpath.observe(echo, 9_000.0)  # a cold first call: one-time costs
    assert fastpath.eligible(echo)
    fastpath.observe(echo, 9_000.0)  # slow twice: it is slow
    assert not fastpath.eligible(echo)


def test_an_overrun_sends_the_guest_to_the_pool_and_the_long_lane(engine: SandboxEngine) -> None:
    fastpath = _fastpath()
    echo = _compiled(engine, _modules.ECHO)
    fastpath.overran(echo)
    assert not fastpath.eligible(echo)
    assert fastpath.lane(echo) == "long"
    assert fastpath.overruns == 1


def test_an_overrun_after_a_record_of_short_runs_keeps_the_short_lane(
    engine: SandboxEngine,
) -> None:
    # A GC pause in one run of a ~100 us guest must not queue it behind computations.
    fastpath = _fastpath()
    echo = _compiled(engine, _modules.ECHO)
    for _ in range(10):
        fastpath.observe(echo, 100.0)
    fastpath.observe(echo, 3_000.0)  # the hiccup, over the 2 ms slice
    fastpath.overran(echo)
    assert not fastpath.eligible(echo)  # re-run on the pool...
    assert fastpath.lane(echo) == "short"  # ...among short guests
    for _ in range(12):
        fastpath.observe(echo, 100.0)
    assert fastpath.eligible(echo)  # and back inline once its runs show it is fast


def test_run_history_lives_and_dies_with_the_module(engine: SandboxEngine) -> None:
    # Keyed by id() it outlived evicted modules and a new one could inherit an
    # old one's record when id() was reused; on the module it cannot.
    import gc
    import weakref

    fastpath = _fastpath()
    slow = _compiled(engine, _modules.ECHO)
    for _ in range(5):
        fastpath.observe(slow, 10 * LONG_RUN_US)
    assert fastpath.lane(slow) == "long" and not fastpath.eligible(slow)
    gone = weakref.ref(slow.module)
    del slow
    gc.collect()
    assert gone() is None, "the fast path keeps no reference to a module"
    fresh = _compiled(engine, _modules.ECHO)
    assert fastpath.lane(fresh) == "short" and fastpath.eligible(fresh)


def test_a_component_without_granted_host_calls_is_placed_like_a_pure_guest(
    engine: SandboxEngine,
) -> None:
    """It imports the host call either way; only a grant lets it wait on an upstream."""
    fastpath = _fastpath()
    component = engine.compile(_components.ECHO, Abi.COMPONENT)
    assert fastpath.lane(component, may_call_host=True) == "io"
    assert fastpath.lane(component, may_call_host=False) == "short"
    fastpath.observe(component, 10 * LONG_RUN_US)
    fastpath.observe(component, 10 * LONG_RUN_US)
    assert fastpath.lane(component, may_call_host=False) == "long"
    assert not fastpath.eligible(component)  # never inline: its own engine and store
    # A core module importing host_call stays in the io lane without a grant: its
    # imports, not the definition, decide (sleeps wait too).
    assert fastpath.lane(_compiled(engine, _modules.HOST_CALL), may_call_host=False) == "io"
