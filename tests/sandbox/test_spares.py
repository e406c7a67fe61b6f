"""Spare component instances: made after a call, used by the next one only, with its limits."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from app.errors import ErrorKind, InvocationFailure
from app.sandbox import Abi, CompiledModule, Limits, SandboxEngine, _spares
from app.sandbox._spares import Spares, SpareShape
from tests.sandbox import _components
from tests.sandbox.conftest import Runner

# Counts its calls in a global and answers the count as one ASCII digit.
_COUNTING = """
  (global $calls (mut i32) (i32.const 0))
  (func (export "handle") (param i32 i32) (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store8 (i32.const 2000) (i32.add (i32.const 48) (global.get $calls)))
    (i32.store8 (i32.const 1024) (i32.const 0))
    (i32.store (i32.const 1028) (i32.const 2000))
    (i32.store (i32.const 1032) (i32.const 1))
    (i32.const 1024))"""
COUNTER = _components.component(_COUNTING)


def _ready(spares: Spares, made: int) -> None:
    """Wait for the maker thread to have made ``made`` spares in all (generous bound)."""
    give_up = time.monotonic() + 30
    while spares.made < made:
        assert time.monotonic() < give_up, "no spare was made"
        time.sleep(0.01)


def _waits(spares: Spares, shape: SpareShape) -> None:
    """Wait for a spare of ``shape`` (the maker may be busy with other tests' shapes)."""
    give_up = time.monotonic() + 30
    while not spares.is_ready(shape):
        assert time.monotonic() < give_up, "no spare was made"
        time.sleep(0.01)


Shapes = Callable[..., SpareShape]


@pytest.fixture
def shape(
    engine: SandboxEngine, limits: Limits, compile_module: Callable[..., CompiledModule]
) -> Shapes:
    """The shape a call of ``wasm`` with a memory limit asks for (deterministic clocks)."""

    def shape_(wasm: bytes, memory_bytes: int, fuel: int | None = None) -> SpareShape:
        parts = compile_module(wasm, Abi.COMPONENT).component
        assert parts is not None
        return SpareShape(
            parts.component,
            parts.linker,
            memory_bytes,
            engine.config.max_table_elements,
            limits.fuel if fuel is None else fuel,
        )

    return shape_


def _call(invoke: Runner, wasm: bytes, memory: int, **overrides: object) -> bytes:
    return invoke(wasm, b"in", abi=Abi.COMPONENT, memory_bytes=memory, **overrides).output


def test_the_next_call_takes_the_spare_and_starts_from_nothing(
    invoke: Runner, engine: SandboxEngine, shape: Shapes
) -> None:
    spares = engine.spares
    memory = 15 * 1024 * 1024 + 3 * 65536  # a shape no other test uses
    assert _call(invoke, COUNTER, memory) == b"1"
    for _ in range(3):
        _waits(spares, shape(COUNTER, memory))
        claimed = spares.claimed
        assert _call(invoke, COUNTER, memory) == b"1"  # a fresh instance, never a used one
        assert spares.claimed == claimed + 1


def test_a_call_with_other_limits_makes_its_own_instance(
    invoke: Runner, engine: SandboxEngine, shape: Shapes
) -> None:
    spares = engine.spares
    memory = 15 * 1024 * 1024 + 4 * 65536
    _call(invoke, COUNTER, memory)
    _waits(spares, shape(COUNTER, memory))
    claimed = spares.claimed
    assert _call(invoke, COUNTER, memory + 65536) == b"1"
    assert spares.claimed == claimed  # the spare was made for the other limit
    assert spares.is_ready(shape(COUNTER, memory))


def test_a_spare_answers_to_its_caller_s_fuel_and_deadline(
    invoke: Runner, engine: SandboxEngine, shape: Shapes
) -> None:
    """Each second call runs on a spare: its callbacks must reach the new owner."""
    spares = engine.spares
    memory = 15 * 1024 * 1024 + 5 * 65536
    loop = _components.INFINITE_LOOP
    for overrides, kind in (
        ({"fuel": 5_000_000}, ErrorKind.FUEL_EXHAUSTED),
        ({"fuel": 10**12, "timeout_ms": 200}, ErrorKind.TIMEOUT),
    ):
        with pytest.raises(InvocationFailure) as caught:
            _call(invoke, loop, memory, **overrides)
        assert caught.value.kind is kind, caught.value.message
        _waits(spares, shape(loop, memory, overrides["fuel"]))
        claimed = spares.claimed
        with pytest.raises(InvocationFailure) as caught:
            _call(invoke, loop, memory, **overrides)
        assert caught.value.kind is kind, caught.value.message
        assert spares.claimed == claimed + 1


# Burns fuel in a core start function while being instantiated, then counts like COUNTER.
STARTS_HEAVY = _components.component(
    """
  (func $warm (local $i i32)
    (loop $more
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 200000)))))
  (start $warm)"""
    + _COUNTING
)


def test_instantiating_a_spare_is_charged_to_the_call_that_takes_it(
    invoke: Runner, engine: SandboxEngine, shape: Shapes
) -> None:
    """A start function's work done ahead must not come free: the fuel a call
    reports, and the fuel that stops it, are the same with or without a spare."""
    spares = engine.spares
    memory = 15 * 1024 * 1024 + 6 * 65536
    own = invoke(STARTS_HEAVY, b"in", abi=Abi.COMPONENT, memory_bytes=memory)
    assert own.output == b"1" and own.metrics.fuel_consumed > 200_000
    _waits(spares, shape(STARTS_HEAVY, memory))
    claimed = spares.claimed
    on_spare = invoke(STARTS_HEAVY, b"in", abi=Abi.COMPONENT, memory_bytes=memory)
    assert spares.claimed == claimed + 1
    assert on_spare.metrics.fuel_consumed == own.metrics.fuel_consumed
    # Too little fuel for the start function: every call runs out, spare or not.
    for _ in range(3):
        with pytest.raises(InvocationFailure) as caught:
            invoke(STARTS_HEAVY, b"in", abi=Abi.COMPONENT, memory_bytes=memory, fuel=100_000)
        assert caught.value.kind is ErrorKind.FUEL_EXHAUSTED, caught.value.message


def test_a_spare_is_handed_out_once_and_the_count_is_capped(engine: SandboxEngine) -> None:
    parts = engine.compile(COUNTER, Abi.COMPONENT).component
    assert parts is not None
    spares = Spares(engine.component_engine)
    shapes = [
        SpareShape(parts.component, parts.linker, 8 * 1024 * 1024 + i * 65536, 1000, 10**9)
        for i in range(_spares._MAX_SPARES + 3)
    ]
    for number, each in enumerate(shapes, start=1):
        spares.want(each)
        _ready(spares, number)
    assert spares.claim(shapes[0]) is None  # the oldest were dropped for the newest
    spare = spares.claim(shapes[-1])
    assert spare is not None
    assert spares.claim(shapes[-1]) is None  # gone once taken
    spares.clear()
    assert spares.claim(shapes[-2]) is None


def test_a_version_whose_spare_cannot_be_made_gets_no_more(engine: SandboxEngine) -> None:
    parts = engine.compile(COUNTER, Abi.COMPONENT).component
    assert parts is not None
    spares = Spares(engine.component_engine)
    too_small = SpareShape(parts.component, parts.linker, 65536, 1000, 10**9)  # it declares 2 pages
    assert spares._make(too_small) is None
    fits = replace(too_small, memory_bytes=8 * 1024 * 1024)
    spares.want(fits)
    assert spares._maker is None  # not even queued: no thread was needed
    assert spares.made == 0
    assert spares.claim(fits) is None


def test_switched_off_nothing_is_made(engine: SandboxEngine, shape: Shapes) -> None:
    spares = Spares(engine.component_engine, enabled=False)
    spares.want(shape(COUNTER, 8 * 1024 * 1024))
    assert spares._maker is None  # no thread, no spare
    assert spares.made == 0
