"""The WebAssembly sandbox: engine, limits, guest ABIs, host functions, scheduling.

Typical use, from the invocation pipeline::

    engine = SandboxEngine(settings.engine_config)   # one per process; engine.start()
    compiled = engine.compile(wasm, Abi.RAW)         # cached by the module store
    scheduler = Scheduler(engine, Executor(settings.executor_config),
                          FastPath(settings.inline_config))
    limits = effective_limits(declared, settings.limit_bounds, invocation.remaining_ms())
    outcome = await scheduler.run(Job(compiled, data, limits, ctx, deadline,
                                      include_logs=True, bridge=bridge, ...))

Everything raises :class:`app.errors.InvocationFailure` with a precise kind.
"""

from app.sandbox._abi import Abi, default_abi
from app.sandbox._engine import CompiledModule, SandboxEngine
from app.sandbox._executor import Executor
from app.sandbox._fastpath import FastPath
from app.sandbox._host_bridge import HostBridge
from app.sandbox._limits import DeclaredLimits, Limits, effective_limits
from app.sandbox._runner import run
from app.sandbox._scheduler import HandOff, Job, Scheduler

__all__ = [
    "Abi",
    "CompiledModule",
    "DeclaredLimits",
    "Executor",
    "FastPath",
    "HandOff",
    "HostBridge",
    "Job",
    "Limits",
    "SandboxEngine",
    "Scheduler",
    "default_abi",
    "effective_limits",
    "run",
]
