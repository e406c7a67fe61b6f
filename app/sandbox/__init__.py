"""The WebAssembly sandbox: engine, limits, guest ABIs, host functions, executor.

Typical use, from the invocation pipeline::

    engine = SandboxEngine(settings)            # one per process; engine.start()
    compiled = engine.compile(wasm, Abi.RAW)    # cached by the module store
    executor = Executor(settings)
    limits = effective_limits(declared, settings, invocation.remaining_ms())
    outcome, queue_us = await executor.submit(
        lambda cancel: run(engine, compiled, data, limits, context=ctx,
                           deadline=invocation.deadline, include_logs=True,
                           host_bridge=bridge, cancel=cancel),
        deadline=invocation.deadline,
    )

Everything raises :class:`app.errors.InvocationFailure` with a precise kind.
"""

from app.sandbox._abi import Abi
from app.sandbox._host_bridge import HostBridge
from app.sandbox.engine import CompiledModule, SandboxEngine
from app.sandbox.executor import Executor
from app.sandbox.fastpath import FastPath
from app.sandbox.limits import DeclaredLimits, Limits, effective_limits
from app.sandbox.runner import run

__all__ = [
    "Abi",
    "CompiledModule",
    "DeclaredLimits",
    "Executor",
    "FastPath",
    "HostBridge",
    "Limits",
    "SandboxEngine",
    "effective_limits",
    "run",
]
