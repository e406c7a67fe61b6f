"""Running one invocation of a component (``abi: component``) in its fresh store.

The same limits as the core ABIs, mapped to the same kinds: fuel and the epoch
deadline on the store, memory through the store's limit (a component's core
modules together may not exceed it, nor declare more initially), the output
cap on what ``handle`` returns, logs and host calls through the invocation
state. The runner (``app.sandbox._runner``) owns the state and the metrics.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import wasmtime
from wasmtime import component

from app.errors import ErrorKind, InvocationFailure
from app.sandbox import _ffi, _spares, _traps
from app.sandbox._engine import ComponentParts, SandboxEngine
from app.sandbox._spares import SpareShape
from app.sandbox._state import InvocationState

__all__ = ["run"]


def _shape(engine: SandboxEngine, parts: ComponentParts, state: InvocationState) -> SpareShape:
    return SpareShape(
        component=parts.component,
        linker=parts.linker if state.deterministic else parts.linker_real,
        memory_bytes=state.limits.memory_bytes,
        table_elements=engine.config.max_table_elements,
        fuel=state.limits.fuel,
    )


def run(
    engine: SandboxEngine, parts: ComponentParts, data: bytes, state: InvocationState, key: int
) -> bytes:
    """Call ``handle(data)`` in a store and instance no guest has run in; its output.

    The instance is a spare made after the previous call of this version when
    one is ready (``_spares``), else made now. Once the runner has dropped the
    store, ``state.after_call`` asks for the next one.
    """
    shape = _shape(engine, parts, state)
    state.after_call = partial(engine.spares.want, shape)
    spare = engine.spares.claim(shape)
    if spare is not None:  # its fuel is the call's, less what instantiating burnt
        _ffi.retarget(spare.key, state)
        store, instance = spare.store, spare.instance
    else:
        store = _spares.new_store(engine.component_engine, shape, key)
    state.store = store
    state.stdout_is_log = True
    state.reads_out_of_memory = True
    state.wasi_epoch_ns = time.monotonic_ns()
    try:
        if spare is None:
            instance = _instantiate(shape.linker, parts.component, store, state)
        handle = instance.get_func(store, "handle")
        if handle is None:  # checked at compile time
            raise InvocationFailure(ErrorKind.INVALID_MODULE, "component exports no 'handle'")
        result: Any = handle(store, data)
        handle.post_return(store)
    except (wasmtime.Trap, wasmtime.WasmtimeError) as err:
        state.flush_stderr()
        raise _out_of_memory(_traps.classify(err, state), state) from None
    finally:
        state.flush_stderr()
        if spare is not None:
            _ffi.unregister(spare.key)
    if state.failure is not None:
        raise state.failure
    if not isinstance(result, bytes):
        raise _guest_error(result)
    if len(result) > state.limits.output_bytes:
        raise InvocationFailure(
            ErrorKind.OUTPUT_TOO_LARGE,
            f"output of {len(result)} bytes exceeds the limit of {state.limits.output_bytes} bytes",
        )
    return result


def _instantiate(
    linker: component.Linker,
    built: component.Component,
    store: wasmtime.Store,
    state: InvocationState,
) -> component.Instance:
    try:
        return linker.instantiate(store, built)
    except (wasmtime.Trap, wasmtime.WasmtimeError) as err:
        if state.failure is not None or _traps.is_trap(err):
            raise _traps.classify(err, state) from None
        text = str(err)
        if "memory" in text and "limit" in text:
            raise InvocationFailure(
                ErrorKind.MEMORY_LIMIT,
                "component needs more memory than allowed"
                f" ({state.limits.memory_bytes} bytes): {_traps.clean_message(text)}",
            ) from None
        raise InvocationFailure(
            ErrorKind.INVALID_MODULE,
            f"component cannot be instantiated: {_traps.clean_message(text)}",
        ) from None


def _out_of_memory(failure: InvocationFailure, state: InvocationState) -> InvocationFailure:
    """MEMORY_LIMIT for a trap that followed the guest's own out-of-memory report.

    The store's limit refuses ``memory.grow`` past ``memory_bytes`` with -1 and
    the copy-on-write engine components run on offers no hook to see it (the
    core ABIs' watched memories do: ``explain_refusal``). What the guest's
    runtime does next is visible: CPython raises ``MemoryError`` and, uncaught,
    prints it and aborts; SpiderMonkey and C runtimes print "out of memory".
    That report before a trap is taken as the refusal. A guest can only make
    its own failure read as MEMORY_LIMIT this way, which the breakers count
    like a TRAP.
    """
    if failure.kind is not ErrorKind.TRAP or not state.out_of_memory_said:
        return failure
    return InvocationFailure(
        ErrorKind.MEMORY_LIMIT,
        f"the guest ran out of memory at its limit of {state.limits.memory_bytes} bytes;"
        f" then: {failure.message}"[:512],
    )


_MAX_GUEST_TEXT = 200


def _guest_error(value: Any) -> InvocationFailure:
    """The guest's own ``guest-error``: its code and message, for the caller."""
    code = str(getattr(value, "code", ""))[:_MAX_GUEST_TEXT]
    message = str(getattr(value, "message", ""))[:_MAX_GUEST_TEXT]
    return InvocationFailure(ErrorKind.GUEST_ERROR, f"{code}: {message}", caller_side=True)
