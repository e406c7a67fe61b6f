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
* ``wasmtime_config_host_memory_creator_set``: guest linear memories are made
  here (:func:`watch_memory`), because it is the only way to *see* a refused
  ``memory.grow``: the store's own limiter answers -1 to the guest and tells
  nobody. Each memory enforces its invocation's limit itself and reports a
  refusal to it, so "the allocator was refused, then the guest failed" can be
  named MEMORY_LIMIT whatever the guest does next.

It also calls exports directly (:func:`call`, :func:`export_func`). ``Func.__call__``
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
import sys
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import wasmtime
from wasmtime import _ffi as _c

from app.sandbox import _mappings

__all__ = [
    "CallbackTarget",
    "RawFunc",
    "call",
    "data_len",
    "export_func",
    "export_memory",
    "instantiate",
    "live_memories",
    "new_store",
    "owning_memories",
    "read",
    "register",
    "retarget",
    "set_stdio",
    "unregister",
    "watch_epochs",
    "watch_memory",
    "write",
]


class CallbackTarget(Protocol):
    """What an invocation answers to the C callbacks."""

    def on_epoch(self, fuel: int | None) -> bool:
        """Called on the wasm thread at every epoch tick; ``False`` stops the guest.

        ``fuel`` is the store's remaining fuel as last written back by compiled
        code (at calls, returns and ``unreachable``, not inside a call-free
        loop), ``None`` if it could not be read.
        """
        ...

    def memory_limit(self) -> int:
        """Largest linear memory, in bytes, the invocation may have."""
        ...

    def on_memory_refused(self, requested: int) -> None:
        """Called on the wasm thread when a memory of ``requested`` bytes was refused."""
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


def retarget(key: int, target: CallbackTarget) -> None:
    """Send a registered key's callbacks to ``target`` from now on (a spare's new owner)."""
    _targets[key] = target


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


def _error(message: str) -> int:
    """A new ``wasmtime_error_t`` for a callback to return (wasmtime takes ownership)."""
    err = _c.wasmtime_error_new(message.encode())
    address: int | None = ctypes.cast(err, ctypes.c_void_p).value
    return address or 0


def _stop_error() -> int:
    return _error("invocation stopped by the runtime")


def _fuel(ctx: Any) -> int | None:
    remaining = ctypes.c_uint64(0)
    err = _c.wasmtime_context_get_fuel(ctx, ctypes.byref(remaining))
    if err:
        _c.wasmtime_error_delete(err)
        return None
    return int(remaining.value)


@_EpochCallback  # type: ignore[untyped-decorator]
def _on_epoch(ctx: Any, data: int | None, delta: Any, kind: Any) -> int:
    target = _targets.get(data or 0)
    try:
        keep_going = target is not None and target.on_epoch(_fuel(ctx))
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


# -- guest linear memories ----------------------------------------------------
#
# wasmtime asks the creator for every linear memory with the space compiled code
# relies on: ``reserved`` bytes that growth never moves out of (0 for a movable
# memory) and ``guard`` bytes after them that must fault. Both are mapped
# PROT_NONE up front and made read/write as the memory grows, as wasmtime's
# own allocator does; fresh anonymous pages are zero, as wasm requires. wasmtime
# checks that a fault falls inside some memory's reservation + guard before it
# turns it into a trap, so the whole range stays mapped until the finalizer,
# which hands small ones to the recycler (zeroed, see ``_mappings``).

_GetMemory = _c.wasmtime_memory_get_callback_t
_GrowMemory = _c.wasmtime_memory_grow_callback_t
_NewMemory = _c.wasmtime_new_memory_callback_t
_Finalizer = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


@dataclass(slots=True)
class _GuestMemory:
    base: int
    mapped: int
    """Bytes mapped at ``base`` (capacity + guard), released by the finalizer."""
    capacity: int
    """Growth up to this never moves ``base``."""
    limit: int
    key: int
    """The owning invocation's callback key (0: none), told about refusals."""
    size: int = 0
    writable: int = 0
    """Bytes from ``base`` made read/write so far (host pages)."""

    def resize(self, new_size: int) -> bool:
        need = _mappings.round_up(new_size)
        if need > self.writable:
            if not _mappings.commit(self.base, self.writable, need):
                return False
            self.writable = need
        self.size = new_size
        return True


_memories: dict[int, _GuestMemory] = {}
_owner = threading.local()


def _refused(key: int, requested: int) -> None:
    target = _targets.get(key)
    if target is not None:
        target.on_memory_refused(requested)


@_NewMemory  # type: ignore[untyped-decorator]
def _new_memory(  # noqa: PLR0917 - the C callback's signature
    env: int | None,
    _ty: Any,
    minimum: int,
    maximum: int,
    reserved: int,
    guard: int,
    ret: Any,
) -> int:
    try:
        key: int = getattr(_owner, "key", 0)
        target = _targets.get(key)
        limit = target.memory_limit() if target is not None else (env or 0)
        if minimum > limit:
            _refused(key, minimum)
            return _error(f"a memory of {minimum} bytes exceeds the limit of {limit} bytes")
        capacity = reserved or _mappings.round_up(min(limit, maximum))
        mapped = capacity + guard
        spare = _mappings.RECYCLER.take(mapped, capacity, minimum)
        base, committed = spare if spare is not None else (_mappings.reserve(mapped), 0)
        if base is None:
            return _error(f"cannot reserve {mapped} bytes of address space")
        memory = _GuestMemory(base=base, mapped=mapped, capacity=capacity, limit=limit, key=key)
        memory.writable = committed
        if not memory.resize(minimum):
            _mappings.release(base, mapped)
            return _error(f"cannot commit {minimum} bytes of guest memory")
        handle = next(_keys)
        _memories[handle] = memory
        ret[0].env = handle
        ret[0].get_memory = _get_memory
        ret[0].grow_memory = _grow_memory
        ret[0].finalizer = _free_memory
        return 0
    except Exception:  # noqa: BLE001 - an exception must never unwind into wasmtime
        return _error("guest memory could not be created")


@_GetMemory  # type: ignore[untyped-decorator]
def _get_memory(env: int | None, size: Any, capacity: Any) -> int:
    memory = _memories.get(env or 0)
    if memory is None:  # never: wasmtime only asks about memories it holds
        size[0] = capacity[0] = 0
        return 0
    size[0] = memory.size
    capacity[0] = memory.capacity
    return memory.base


@_GrowMemory  # type: ignore[untyped-decorator]
def _grow_memory(env: int | None, new_size: int) -> int:
    try:
        memory = _memories.get(env or 0)
        if memory is None:
            return _error("unknown guest memory")
        if new_size > memory.limit:
            _refused(memory.key, new_size)
            return _error(f"memory.grow to {new_size} bytes refused (limit {memory.limit})")
        if new_size > memory.capacity or not memory.resize(new_size):
            return _error(f"cannot grow guest memory to {new_size} bytes")
        return 0
    except Exception:  # noqa: BLE001 - an exception must never unwind into wasmtime
        return _error("guest memory could not grow")


@_Finalizer  # type: ignore[untyped-decorator]
def _free_memory(env: int | None) -> None:
    memory = _memories.pop(env or 0, None)
    if memory is not None and not _mappings.RECYCLER.keep(
        memory.base, memory.mapped, memory.capacity, memory.writable
    ):
        _mappings.release(memory.base, memory.mapped)


def watch_memory(config: wasmtime.Config, fallback_limit: int) -> bool:
    """Make every linear memory of engines built from ``config`` here; ``False`` if not.

    A memory made while :func:`owning_memories` is active on the thread takes
    that target's ``memory_limit()`` and reports refused growth (or a too large
    initial size) to its ``on_memory_refused``; one made outside any gets
    ``fallback_limit``. The store's own memory limit must then be off, or it
    refuses growth before this code sees it. Linux only (mmap flags); elsewhere
    nothing is installed and the caller keeps the store limit.
    """
    if not sys.platform.startswith("linux"):
        return False
    creator: Any = _c.wasmtime_memory_creator_t()
    creator.env = fallback_limit  # handed back to _new_memory as ``env``
    creator.new_memory = _new_memory
    creator.finalizer = _NO_FINALIZER
    _c.wasmtime_config_host_memory_creator_set(config.ptr(), ctypes.byref(creator))
    # Copy-on-write images map module data over wasmtime's own mmap memories;
    # with host memories the data segments are copied in at instantiation.
    _c.wasmtime_config_memory_init_cow_set(config.ptr(), False)
    return True


class owning_memories:
    """Memories created on this thread meanwhile belong to the target ``key``.

    A class, not a generator context manager: a third of the cost, once per call.
    """

    __slots__ = ("_key", "_previous")

    def __init__(self, key: int) -> None:
        self._key = key
        self._previous = 0

    def __enter__(self) -> None:
        self._previous = getattr(_owner, "key", 0)
        _owner.key = self._key

    def __exit__(self, *_: object) -> None:
        _owner.key = self._previous


def live_memories() -> int:
    """Guest memories not yet released by wasmtime (for tests)."""
    return len(_memories)


_I32: Any = _c.WASMTIME_I32.value  # the i32 tag of wasmtime_val_t.kind


def call(
    store: wasmtime.Store | wasmtime.Caller,
    func: wasmtime.Func | RawFunc,
    *args: int,
    results: int,
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
        ctypes.byref(func._func if isinstance(func, wasmtime.Func) else func),
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


def instantiate(pre: wasmtime.InstancePre, store: wasmtime.Store) -> wasmtime.Instance:
    """``pre.instantiate(store)`` without the generator context manager around it.

    Raises ``wasmtime.Trap`` (a start function trapped) or ``wasmtime.WasmtimeError``
    as :func:`call` does; our host functions report through their target, never
    through wasmtime-py's pending-exception slot, which ``call`` does not read either.
    """
    instance = _c.wasmtime_instance_t()
    trap = ctypes.POINTER(_c.wasm_trap_t)()
    error = _c.wasmtime_instance_pre_instantiate(
        pre.ptr(), store._context(), ctypes.byref(instance), ctypes.byref(trap)
    )
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    if trap:
        raise wasmtime.Trap._from_ptr(trap)
    return wasmtime.Instance._from_raw(instance)


def new_store(engine: wasmtime.Engine) -> wasmtime.Store:
    """A ``wasmtime.Store`` with no host data, made without its constructor.

    ``Store.__init__`` builds a NULL finalizer with ``ctypes.cast`` and checks
    its arguments on every call: a few µs of a call that is ~100 µs in all.
    This sets what it sets (the pointer, the context, the engine) from the
    same C calls; wasmtime-py's version is pinned, and every sandbox test goes
    through here.
    """
    store = wasmtime.Store.__new__(wasmtime.Store)
    store._set_ptr(_c.wasmtime_store_new(engine.ptr(), None, _NO_FINALIZER))
    store._Store__context = _c.wasmtime_store_context(store.ptr())  # type: ignore[attr-defined]
    store.engine = engine
    return store


def export_memory(
    store: wasmtime.Store, instance: wasmtime.Instance, name: str = "memory"
) -> wasmtime.Memory | None:
    """A memory export by name; ``None`` if there is none or it is something else.

    Without materialising every export like ``Instance.exports``, and without
    ``wrap_extern``, which runs an import statement on each call.
    """
    item = _c.wasmtime_extern_t()
    raw = name.encode()
    found = _c.wasmtime_instance_export_get(
        store._context(), ctypes.byref(instance._instance), raw, len(raw), ctypes.byref(item)
    )
    kind: Any = item.kind  # a plain int at run time (a ctypes field)
    if not found or kind != _c.WASMTIME_EXTERN_MEMORY.value:
        return None
    return wasmtime.Memory._from_raw(item.of.memory)


RawFunc = _c.wasmtime_func_t
"""A function export as wasmtime's C struct: :func:`call` takes it like a ``Func``."""


def export_func(store: wasmtime.Store, instance: wasmtime.Instance, name: str) -> RawFunc | None:
    """A function export by name without wrapping it in a ``Func`` (a few µs a call).

    ``None`` when the instance has no export of that name or it is not a function.
    """
    item = _c.wasmtime_extern_t()
    raw = name.encode()
    found = _c.wasmtime_instance_export_get(
        store._context(), ctypes.byref(instance._instance), raw, len(raw), ctypes.byref(item)
    )
    kind: Any = item.kind  # a plain int at run time (a ctypes field)
    if not found or kind != _c.WASMTIME_EXTERN_FUNC.value:
        return None
    func: RawFunc = item.of.func
    return func


def data_len(store: wasmtime.Store, memory: wasmtime.Memory) -> int:
    """The memory's size in bytes, without ``Memory.data_len``'s own checks."""
    return int(_c.wasmtime_memory_data_size(store._context(), ctypes.byref(memory._memory)))


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
