"""Which host function answers which import: the one table, defined on the engine's linker."""

from __future__ import annotations

from typing import Any

import wasmtime

from app.sandbox._hostfuncs import _wasi
from app.sandbox._hostfuncs._call import host_call
from app.sandbox._hostfuncs._clocks import clock_res_get, clock_time_get, random_get
from app.sandbox._hostfuncs._config import host_config
from app.sandbox._hostfuncs._log import host_log
from app.sandbox._hostfuncs._poll import poll_oneoff

__all__ = ["define"]

_I32 = wasmtime.ValType.i32()
_I64 = wasmtime.ValType.i64()


def define(linker: wasmtime.Linker, *, wasi: bool, deterministic: bool = True) -> None:
    """Add the host functions and, for WASI, wasmtime's WASI with replacements.

    ``poll_oneoff`` is always the bounded one; with ``deterministic`` the
    clocks and ``random_get`` are the virtual ones too, otherwise wasmtime's.
    """
    funcs: list[tuple[str, str, wasmtime.FuncType, Any]] = [
        ("ameide", "host_log", wasmtime.FuncType([_I32, _I32, _I32], []), host_log),
        ("ameide", "host_call", wasmtime.FuncType([_I32, _I32], [_I64]), host_call),
        ("ameide", "host_config", wasmtime.FuncType([], [_I64]), host_config),
    ]
    if wasi:
        linker.allow_shadowing = True
        linker.define_wasi()
        poll_type = wasmtime.FuncType([_I32, _I32, _I32, _I32], [_I32])
        funcs.append((_wasi.MODULE, "poll_oneoff", poll_type, poll_oneoff))
        if deterministic:
            time_type = wasmtime.FuncType([_I32, _I64, _I32], [_I32])
            two_i32 = wasmtime.FuncType([_I32, _I32], [_I32])
            funcs += [
                (_wasi.MODULE, "clock_time_get", time_type, clock_time_get),
                (_wasi.MODULE, "clock_res_get", two_i32, clock_res_get),
                (_wasi.MODULE, "random_get", two_i32, random_get),
            ]
    for module, name, ty, fn in funcs:
        linker.define_func(module, name, ty, fn, access_caller=True)
    linker.allow_shadowing = False
