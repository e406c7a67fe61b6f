"""Recycled guest memories: nothing of the last guest survives, and bounds still trap."""

from __future__ import annotations

import ctypes

import pytest

from app.errors import ErrorKind, InvocationFailure
from app.sandbox import SandboxEngine, _mappings
from tests.sandbox import _modules
from tests.sandbox.conftest import Runner

PAGE = 65536

# Grows to 4 wasm pages and fills them all with 0xAB: a tenant's secret.
WRITER = _modules.raw("""
  (func (export "handle") (param i32 i32) (result i64)
    (drop (memory.grow (i32.const 3)))
    (memory.fill (i32.const 0) (i32.const 0xAB) (i32.const 262144))
    (i64.const 0))""")

# Grows to 4 pages too and answers how many of their bytes are not zero (4 bytes, LE).
READER = _modules.raw("""
  (func (export "handle") (param i32 i32) (result i64)
    (local $i i32) (local $seen i32)
    (drop (memory.grow (i32.const 3)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.const 262144)))
        (if (i32.load8_u (local.get $i))
          (then (local.set $seen (i32.add (local.get $seen) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.store (i32.const 0) (local.get $seen))
    (i64.const 4))""")

# One page; reads two pages in, past its memory: must trap like any guest's.
PROBE = _modules.raw("""
  (func (export "handle") (param i32 i32) (result i64)
    (drop (i32.load (i32.const 131072)))
    (i64.const 0))""")


def _unique_limit(n: int) -> int:
    """A memory limit no other test uses, so the recycled reservation is this test's."""
    return 15 * 1024 * 1024 + n * PAGE


def test_a_recycled_memory_holds_nothing_of_the_last_guest(
    invoke: Runner, engine: SandboxEngine
) -> None:
    assert engine.watches_memory
    limit = _unique_limit(1)
    invoke(WRITER, memory_bytes=limit)
    reused = _mappings.RECYCLER.reused
    outcome = invoke(READER, memory_bytes=limit)
    assert _mappings.RECYCLER.reused == reused + 1  # it did get the writer's reservation
    assert int.from_bytes(outcome.output, "little") == 0


def test_a_recycled_memory_ends_where_the_next_guest_s_memory_ends(invoke: Runner) -> None:
    limit = _unique_limit(2)
    invoke(WRITER, memory_bytes=limit)  # committed 4 pages, then released
    reused = _mappings.RECYCLER.reused
    with pytest.raises(InvocationFailure) as failure:
        invoke(PROBE, memory_bytes=limit)
    assert _mappings.RECYCLER.reused == reused + 1
    assert failure.value.kind is ErrorKind.TRAP
    assert "memory fault at wasm address 0x20000" in failure.value.message


def test_the_recycler_zeroes_and_caps_what_it_keeps() -> None:
    recycler = _mappings.Recycler(max_per_shape=2, max_resident_bytes=3 * PAGE)
    mapped, capacity = 8 * PAGE, 4 * PAGE
    bases = [_mappings.reserve(mapped) for _ in range(4)]
    assert all(base is not None for base in bases)
    for base in bases:
        assert base is not None
        assert _mappings.commit(base, 0, PAGE)
        ctypes.memset(base, 0x5A, PAGE)
    assert recycler.keep(bases[0] or 0, mapped, capacity, PAGE)
    assert recycler.keep(bases[1] or 0, mapped, capacity, PAGE)
    assert not recycler.keep(bases[2] or 0, mapped, capacity, PAGE)  # two per shape
    assert recycler.keep(bases[2] or 0, mapped, 2 * PAGE, PAGE)  # another shape
    assert not recycler.keep(bases[3] or 0, mapped, 3 * PAGE, PAGE)  # over the bytes cap
    assert recycler.resident_bytes() == 3 * PAGE
    too_big = _mappings.KEEP_RESIDENT_BYTES + PAGE
    assert not recycler.keep(bases[3] or 0, mapped, 3 * PAGE, too_big)

    taken = recycler.take(mapped, capacity, PAGE)
    assert taken is not None
    base, committed = taken
    assert committed == PAGE
    assert ctypes.string_at(base, PAGE) == bytes(PAGE)
    assert recycler.take(mapped, 5 * PAGE, PAGE) is None  # no such shape kept
    assert recycler.resident_bytes() == 2 * PAGE
    for kept in (base, bases[3]):
        _mappings.release(kept or 0, mapped)
