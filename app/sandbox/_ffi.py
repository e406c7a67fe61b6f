"""Wasmtime C API calls that wasmtime-py 50 does not expose, in one place.

wasmtime-py 50.0.1 (pinned in pyproject) lacks three things the sandbox needs,
all present in the bundled ``libwasmtime`` and declared in ``wasmtime._bindings``:

* ``wasi_config_set_stdin_bytes``: stdin from memory, no temporary file.
* ``wasi_config_set_{stdout,stderr}_custom`` *without a finalizer*. The public
  ``WasiConfig.stdout_custom`` registers a Python finalizer that wasmtime runs
  on one of its tokio threads, sometimes after the store is gone; if that
  happens while the interpreter shuts down the thread cannot take the GIL and
  the process prints a Rust "panic in a function that cannot unwind" (seen in
  ~1 of 3 short-lived processes). Passing no finalizer avoids it; the sandbox
  unregisters its sink itself.
* ``wasmtime_store_epoch_deadline_callback``: lets each invocation decide at
  every epoch tick whether to go on, so a deadline or a cancelled caller stops
  the guest without touching other stores.

It also calls exports directly (:func:`call`, :func:`export`). ``Func.__call__``
re-reads the function type and converts every value through ``Val`` on each
call, and then consults wasmtime-py's process-wide "last exception"; the
direct path halves the cost of a small invocation (measured 108 -> 58 us for
instantiate + alloc + handle) and can never pick up another thread's exception.
The types were checked at compile time (``_abi``), so the call is safe.

Callbacks find their invocation through an integer key passed as the C
``data`` pointer, because stdout/stderr callbacks run on wasmtime's tokio
threads, not on the thread that called into wasm.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
from typing import Any, Protocol

import wasmtime
from wasmtime import _ffi as _c
from wasmtime._extern import wrap_extern


class CallbackTarget(Protocol):
    """What an invocation answers to the C callbacks."""

    def on_epoch(self) -> bool:
        """Called on the wasm thread at every epoch tick; ``False`` stops the guest."""
        ...

    def on_stdout(self, data: bytes) -> int:
        """Called (on a wasmtime thread) with guest stdout; bytes taken or -errno."""
        ...

    def on_stderr(self, data: bytes) -> int:
        """Like :meth:`on_stdout`, for stderr."""
        ...


_targets: dict[int, CallbackTarget] = {}
_keys = itertools.count(1)  # 0 would arrive as a NULL pointer (None)


def register(target: CallbackTarget) -> int:
    """Make ``target`` reachable from C callbacks; returns its key."""
    key = next(_keys)
    _targets[key] = target
    return key


def unregister(key: int) -> None:
    """Forget a target; late callbacks for it then fail harmlessly."""
    _targets.pop(key, None)


_EpochCallback = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(_c.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(_c.wasmtime_update_deadline_kind_t),
)
_OutputCallback = ctypes.CFUNCTYPE(
    ctypes.c_ssize_t, ctypes.c_void_p, ctypes.POINTER(ctypes.c_ubyte), ctypes.c_size_t
)
_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()  # a NULL function pointer
_UPDATE_CONTINUE = 0


def _stop_error() -> int:
    err = _c.wasmtime_error_new(b"invocation stopped by the runtime")
    address: int | None = ctypes.cast(err, ctypes.c_void_p).value
    return address or 0


@_EpochCallback  # type: ignore[untyped-decorator]
def _on_epoch(_ctx: Any, data: int | None, delta: Any, kind: Any) -> int:
    target = _targets.get(data or 0)
    try:
        keep_going = target is not None and target.on_epoch()
    except Exception:  # noqa: BLE001 - an exception must never unwind into wasmtime
        keep_going = False
    if not keep_going:
        return _stop_error()
    delta[0] = 1
    kind[0] = _UPDATE_CONTINUE
    return 0


def _output(data: int | None, ptr: Any, size: int, *, stderr: bool) -> int:
    target = _targets.get(data or 0)
    if target is None:
        return -errno.EPIPE
    chunk = ctypes.string_at(ptr, size) if size else b""
    try:
        return target.on_stderr(chunk) if stderr else target.on_stdout(chunk)
    except Exception:  # noqa: BLE001 - an exception must never unwind into wasmtime
        return -errno.EIO


@_OutputCallback  # type: ignore[untyped-decorator]
def _on_stdout(data: int | None, ptr: Any, size: int) -> int:
    return _output(data, ptr, size, stderr=False)


@_OutputCallback  # type: ignore[untyped-decorator]
def _on_stderr(data: int | None, ptr: Any, size: int) -> int:
    return _output(data, ptr, size, stderr=True)


def watch_epochs(store: wasmtime.Store, key: int) -> None:
    """Call the target's ``on_epoch`` at every tick while ``store`` runs wasm.

    The store's epoch deadline is one tick, so the callback runs at every
    engine tick and renews it by one as long as the target says so.
    """
    _c.wasmtime_store_epoch_deadline_callback(store.ptr(), _on_epoch, key, _NO_FINALIZER)
    store.set_epoch_deadline(1)


def set_stdio(config: wasmtime.WasiConfig, stdin: bytes, key: int) -> None:
    """Feed ``stdin`` from memory and route stdout/stderr to the target ``key``."""
    vec = _c.wasm_byte_vec_t()
    buf = (ctypes.c_uint8 * len(stdin)).from_buffer_copy(stdin)
    _c.wasm_byte_vec_new(ctypes.byref(vec), len(stdin), buf)
    # Takes the vector's contents; ``vec`` is left empty and needs no delete.
    _c.wasi_config_set_stdin_bytes(config.ptr(), ctypes.byref(vec))
    _c.wasi_config_set_stdout_custom(config.ptr(), _on_stdout, key, _NO_FINALIZER)
    _c.wasi_config_set_stderr_custom(config.ptr(), _on_stderr, key, _NO_FINALIZER)


_I32: Any = _c.WASMTIME_I32.value  # the i32 tag of wasmtime_val_t.kind


def call(
    store: wasmtime.Store | wasmtime.Caller, func: wasmtime.Func, *args: int, results: int
) -> int | None:
    """Call ``func`` with i32 ``args``; its i32/i64 result if ``results`` is 1, else ``None``.

    wasmtime checks the arity and types against the function's own (a mismatch
    is a ``WasmtimeError``), so only integer signatures are supported here.
    Raises ``wasmtime.Trap`` or ``wasmtime.WasmtimeError`` (``ExitTrap`` for
    ``proc_exit``) exactly like ``Func.__call__``.
    """
    params = (_c.wasmtime_val_t * len(args))()
    for i, arg in enumerate(args):
        params[i].kind = _I32
        params[i].of.i32 = arg
    out = (_c.wasmtime_val_t * 1)()
    trap = ctypes.POINTER(_c.wasm_trap_t)()
    error = _c.wasmtime_func_call(
        store._context(),
        ctypes.byref(func._func),
        params,
        len(args),
        out,
        results,
        ctypes.byref(trap),
    )
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    if trap:
        raise wasmtime.Trap._from_ptr(trap)
    if not results:
        return None
    result: Any = out[0]
    return int(result.of.i32 if result.kind == _I32 else result.of.i64)


def export(store: wasmtime.Store, instance: wasmtime.Instance, name: str) -> object | None:
    """One export by name, without materialising all of them like ``Instance.exports``."""
    item = _c.wasmtime_extern_t()
    raw = name.encode()
    found = _c.wasmtime_instance_export_get(
        store._context(), ctypes.byref(instance._instance), raw, len(raw), ctypes.byref(item)
    )
    return wrap_extern(item) if found else None


def write(store: wasmtime.Store, memory: wasmtime.Memory, offset: int, data: bytes) -> None:
    """Copy ``data`` into guest memory at ``offset``; the caller checked the bounds.

    ``Memory.write`` copies the bytes into a bytearray first and asks for the
    memory's size twice; this is one ``memmove``.
    """
    base = _c.wasmtime_memory_data(store._context(), ctypes.byref(memory._memory))
    ctypes.memmove(ctypes.addressof(base.contents) + offset, data, len(data))


def read(store: wasmtime.Store, memory: wasmtime.Memory, offset: int, length: int) -> bytes:
    """``length`` bytes of guest memory from ``offset``; the caller checked the bounds."""
    base = _c.wasmtime_memory_data(store._context(), ctypes.byref(memory._memory))
    return ctypes.string_at(ctypes.addressof(base.contents) + offset, length)
