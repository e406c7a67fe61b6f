"""The one shared wasmtime engine: configuration, compilation and the epoch clock.

A process has one :class:`SandboxEngine`. Compiled modules belong to the
engine that compiled them, and the engine's configuration (fuel, epochs,
stack) is what makes every limit enforceable, so it is fixed here once.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import wasmtime
import wasmtime.component

from app.errors import ErrorKind, InvocationFailure
from app.sandbox import _abi, _byte_lists, _ffi, _hostfuncs
from app.sandbox._abi import Abi
from app.sandbox._pacer import Pacer
from app.sandbox._spares import Spares
from app.sandbox._traps import clean_message
from app.settings import EngineConfig
from app.telemetry import Family, single

__all__ = [
    "FUEL_PER_CPU_S",
    "CompiledModule",
    "ComponentParts",
    "RunStats",
    "SandboxEngine",
]

_byte_lists.install()  # components exchange list<u8>: one copy, not a Python loop

_WASM_MAGIC = b"\0asm"
FUEL_PER_CPU_S = 1e9
"""Fuel per CPU second of the tightest loop (one ``br`` a round) here, measured by
``bench/fuel_calibration.py`` (the ``spin`` example's rounds: ~13e9): the starting guess
for the fuel a stopped call-free loop burnt, until a module's runs teach a better one."""


@dataclass(slots=True)
class RunStats:
    """A compiled module's run history, for the fast path and lane choice."""

    pure: bool | None = None
    """Imports nothing that can block (``None``: not looked at yet)."""
    runs: int = 0
    ewma_us: float | None = None
    """Moving average CPU µs per run, the first run excluded (one-time costs)."""
    cpu_us: float | None = None
    """The same, first run included: for lanes."""
    fuel_rate: float | None = None
    """Fuel per CPU second its runs burnt (moving average of runs of 2 ms and more)."""


@dataclass(frozen=True, slots=True)
class ComponentParts:
    """A validated component and the linkers it is instantiated with."""

    component: wasmtime.component.Component
    linker: wasmtime.component.Linker
    """Deterministic clocks and random (the default)."""
    linker_real: wasmtime.component.Linker
    """wasmtime's real clocks and random (a tier grant)."""


@dataclass(frozen=True, slots=True, eq=False)
class CompiledModule:
    """A validated module, pre-linked so an invocation only instantiates it.

    A core module (``raw``, ``wasi-stdio``) has ``module`` and its pre-linked
    instances; a component has ``component`` instead.
    """

    module: wasmtime.Module | None
    abi: Abi
    pre: wasmtime.InstancePre | None
    """Linked with the deterministic clocks and random (the wasi-stdio default)."""
    pre_real: wasmtime.InstancePre | None
    """Linked with wasmtime's real clocks and random (a tier grant); ``pre`` for raw."""
    min_memory_bytes: int
    """Initial memory the module declares; above the limit it fails as MEMORY_LIMIT."""
    component: ComponentParts | None = None
    runs: RunStats = field(default_factory=RunStats)
    """What its runs cost so far (kept by ``FastPath``): it lives and dies with the
    module, so an evicted module's record goes with it and is never inherited."""


class SandboxEngine:
    """Owns the ``wasmtime.Engine``, its pre-built linkers and the epoch ticker thread."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._config_items = {
            "consume_fuel": "1",
            "epoch_interruption": "1",
            "max_wasm_stack": str(config.max_wasm_stack_bytes),
            "cranelift_opt_level": "speed",
        }
        wasm_config = wasmtime.Config()
        wasm_config.consume_fuel = True
        wasm_config.epoch_interruption = True
        wasm_config.max_wasm_stack = config.max_wasm_stack_bytes
        wasm_config.cranelift_opt_level = "speed"
        # Guest memories are made by the sandbox so a refused memory.grow is seen
        # (MEMORY_LIMIT); the stores then carry no memory limit of their own.
        self.watches_memory = config.watch_memory and _ffi.watch_memory(
            wasm_config, config.max_memory_bytes
        )
        if self.watches_memory:
            self._config_items["memory_init_cow"] = "0"
            self._config_items["host_memory"] = "1"
        self.engine = wasmtime.Engine(wasm_config)
        self.component_engine = wasmtime.Engine(_component_config(config))
        """Components on their own engine: copy-on-write memory images (no custom
        memories) make a 20 MB Python component instantiate in ~1 ms, not ~20 ms."""
        self.spares = Spares(self.component_engine, enabled=config.component_spares)
        """Component instances made ahead of their call (``_spares``)."""
        self._component_linkers = tuple(
            _component_linker(self.component_engine, deterministic=deterministic)
            for deterministic in (True, False)
        )
        self._linkers: dict[Abi, wasmtime.Linker] = {}
        for abi in Abi:
            linker = wasmtime.Linker(self.engine)
            _hostfuncs.define(linker, wasi=abi is Abi.WASI_STDIO)
            self._linkers[abi] = linker
        self._real_wasi_linker = wasmtime.Linker(self.engine)
        _hostfuncs.define(self._real_wasi_linker, wasi=True, deterministic=False)
        self.pacer = Pacer(config.host_paced_calls_per_s)
        self.tick_s = config.epoch_tick_ms / 1000.0
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- epoch clock ----------------------------------------------------------
    def start(self) -> None:
        """Start the epoch ticker (idempotent). Deadlines are only enforced while it runs."""
        with self._lock:
            if self._ticker is not None and self._ticker.is_alive():
                return
            self._stop.clear()
            self._ticker = threading.Thread(
                target=self._tick, name="wasm-epoch-ticker", daemon=True
            )
            self._ticker.start()

    @property
    def running(self) -> bool:
        """Whether the epoch ticker runs."""
        return self._ticker is not None and self._ticker.is_alive()

    def _tick(self) -> None:
        while not self._stop.wait(self.tick_s):
            self.engine.increment_epoch()
            self.component_engine.increment_epoch()

    def close(self) -> None:
        """Stop the ticker. Close the executor first: guests can no longer time out."""
        with self._lock:
            self._stop.set()
            ticker, self._ticker = self._ticker, None
        self.spares.clear()
        if ticker is not None:
            ticker.join(timeout=5 * self.tick_s + 1.0)

    def metric_families(self) -> Iterable[Family]:
        yield single(
            "counter",
            "host_paced_calls",
            "Host-function calls of guests past their allowance, paced process-wide.",
            self.pacer.slots,
        )

    def __enter__(self) -> SandboxEngine:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- modules ------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """Changes whenever compiled artifacts stop being interchangeable (cache key part)."""
        parts = [
            f"wasmtime={importlib.metadata.version('wasmtime')}",
            f"machine={platform.machine()}",
            *(f"{k}={v}" for k, v in sorted(self._config_items.items())),
        ]
        return hashlib.sha256(";".join(parts).encode()).hexdigest()[:32]

    def compile(self, wasm: bytes, abi: Abi | str) -> CompiledModule:
        """Validate and compile ``wasm`` (CPU-heavy: call it off the event loop)."""
        if bytes(wasm[:4]) != _WASM_MAGIC:
            # wasmtime-py would parse anything else as the text format.
            raise InvocationFailure(
                ErrorKind.INVALID_MODULE, "not a wasm binary (no \\0asm header)"
            )
        is_component = bytes(wasm[4:8]) == _abi.COMPONENT_LAYER
        if is_component != (_abi_of(abi) is Abi.COMPONENT):
            raise InvocationFailure(
                ErrorKind.INVALID_MODULE,
                f"abi {abi} needs a core module, this is a component"
                if is_component
                else "abi component needs a component, this is a core module"
                " (wrap it with `wasm-tools component new`)",
            )
        if is_component:
            try:
                built = wasmtime.component.Component(self.component_engine, wasm)
            except wasmtime.WasmtimeError as err:
                raise InvocationFailure(
                    ErrorKind.INVALID_MODULE,
                    f"not a valid component: {clean_message(str(err))}",
                ) from None
            return self._prepare_component(built)
        try:
            module = wasmtime.Module(self.engine, wasm)
        except wasmtime.WasmtimeError as err:
            raise InvocationFailure(
                ErrorKind.INVALID_MODULE, f"not a valid wasm module: {clean_message(str(err))}"
            ) from None
        return self._prepare(module, abi)

    def serialize(self, compiled: CompiledModule) -> bytes:
        """Native code for the on-disk cache; only this engine fingerprint can load it."""
        if compiled.component is not None:
            return bytes(compiled.component.component.serialize())
        assert compiled.module is not None
        return bytes(compiled.module.serialize())

    def deserialize(self, data: bytes, abi: Abi | str) -> CompiledModule:
        """Load :meth:`serialize` output. The bytes run as native code: trusted input only."""
        try:
            if _abi_of(abi) is Abi.COMPONENT:
                return self._prepare_component(
                    wasmtime.component.Component.deserialize(self.component_engine, data)
                )
            module = wasmtime.Module.deserialize(self.engine, data)
        except wasmtime.WasmtimeError as err:
            raise InvocationFailure(
                ErrorKind.INVALID_MODULE,
                f"cannot load precompiled module: {clean_message(str(err))}",
            ) from None
        return self._prepare(module, abi)

    def _prepare_component(self, built: wasmtime.component.Component) -> CompiledModule:
        _abi.check_component(built, self.component_engine)
        linker, linker_real = self._component_linkers
        return CompiledModule(
            module=None,
            abi=Abi.COMPONENT,
            pre=None,
            pre_real=None,
            min_memory_bytes=0,
            component=ComponentParts(built, linker, linker_real),
        )

    def _prepare(self, module: wasmtime.Module, abi_name: Abi | str) -> CompiledModule:
        abi = _abi_of(abi_name)
        _abi.check_imports(module, abi)
        _abi.check_exports(module, abi)
        pre = _link(self._linkers[abi], module)
        # Both variants are linked once here so that run() only picks one.
        pre_real = pre
        if abi is Abi.WASI_STDIO and _abi.imports_clock_or_random(module):
            pre_real = _link(self._real_wasi_linker, module)
        return CompiledModule(
            module=module,
            abi=abi,
            pre=pre,
            pre_real=pre_real,
            min_memory_bytes=_abi.min_memory_bytes(module),
        )


def _abi_of(name: Abi | str) -> Abi:
    try:
        return Abi(name)
    except ValueError:
        raise InvocationFailure(
            ErrorKind.INVALID_MODULE,
            f"unknown abi {name!r}; expected raw, wasi-stdio or component",
        ) from None


def _component_config(config: EngineConfig) -> wasmtime.Config:
    wasm_config = wasmtime.Config()
    wasm_config.consume_fuel = True
    wasm_config.epoch_interruption = True
    wasm_config.max_wasm_stack = config.max_wasm_stack_bytes
    wasm_config.cranelift_opt_level = "speed"
    return wasm_config


def _component_linker(engine: wasmtime.Engine, *, deterministic: bool) -> wasmtime.component.Linker:
    linker = wasmtime.component.Linker(engine)
    _hostfuncs.define_component(linker, deterministic=deterministic)
    return linker


def _link(linker: wasmtime.Linker, module: wasmtime.Module) -> wasmtime.InstancePre:
    try:
        return linker.instantiate_pre(module)
    except wasmtime.WasmtimeError as err:
        # Names were checked before, so this is a signature mismatch.
        raise InvocationFailure(
            ErrorKind.INVALID_MODULE,
            f"an import does not match the runtime's: {clean_message(str(err))}",
        ) from None
