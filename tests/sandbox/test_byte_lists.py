"""``list<u8>`` conversion (``app.sandbox._byte_lists``): the same values as
wasmtime-py's own element-by-element code, in both directions, at every size."""

from __future__ import annotations

import ctypes
import os

import pytest
import wasmtime
from wasmtime import _ffi as ffi
from wasmtime import component
from wasmtime.component import _types

from app.sandbox import Abi, _byte_lists
from tests.sandbox import _components
from tests.sandbox.conftest import Runner

SIZES = [0, 1, 255, 256, 4096, 100_003]
ECHO_BIG = _components.component(
    f"""
  (func (export "handle") (param $p i32) (param $n i32) (result i32)
    {_components._ok("(local.get $p)", "(local.get $n)")})""",
    pages=8,
)
"""The WAT echo with room for the largest size (its realloc is a bump in 8 pages)."""


@pytest.fixture(scope="module")
def byte_list() -> _types.ListType:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    instance = component.Linker(engine).instantiate(
        store, component.Component(engine, _components.ECHO)
    )
    handle = instance.get_func(store, "handle")
    assert handle is not None
    (_, list_type), *_ = handle.type(store).params
    assert isinstance(list_type, _types.ListType)
    return list_type


def _value() -> ffi.wasmtime_component_val_t:
    return ffi.wasmtime_component_val_t()


def test_it_is_installed_by_the_sandbox() -> None:
    assert _types.ListType.convert_to_c is _byte_lists._to_c
    assert _types.ListType.convert_from_c is _byte_lists._from_c


@pytest.mark.parametrize("size", SIZES)
def test_ours_in_theirs_out_and_back(byte_list: _types.ListType, size: int) -> None:
    data = os.urandom(size)
    ours = _value()
    _byte_lists._to_c(byte_list, None, data, ctypes.pointer(ours))
    assert _byte_lists._original_from_c(byte_list, ours) == data
    theirs = _value()
    _byte_lists._original_to_c(byte_list, None, data, ctypes.pointer(theirs))
    assert _byte_lists._from_c(byte_list, theirs) == data


def test_a_list_that_is_not_bytes_is_refused_as_before(byte_list: _types.ListType) -> None:
    with pytest.raises(TypeError):
        _byte_lists._to_c(byte_list, None, [1, 2, 3], ctypes.pointer(_value()))


@pytest.mark.parametrize("size", SIZES)
def test_a_component_echoes_every_byte(invoke: Runner, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    assert invoke(ECHO_BIG, data, abi=Abi.COMPONENT, output_bytes=1 << 20).output == data
