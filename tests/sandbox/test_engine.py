"""Engine: precompiled artifacts, fingerprint, epoch ticker; and effective limits."""

from __future__ import annotations

import pytest

from app.errors import ErrorKind, InvocationFailure
from app.invocation import ExecutionContext
from app.sandbox import Abi, DeclaredLimits, SandboxEngine, effective_limits, run
from app.settings import Settings
from tests.sandbox import _modules
from tests.sandbox.conftest import CONTEXT


def test_serialize_round_trip(engine: SandboxEngine, settings: Settings) -> None:
    compiled = engine.compile(_modules.ECHO, Abi.RAW)
    data = engine.serialize(compiled)
    loaded = engine.deserialize(data, "raw")
    assert loaded.abi is Abi.RAW
    limits = effective_limits(DeclaredLimits(), settings.limit_bounds, None)
    outcome = run(engine, loaded, b"hi", limits, context=CONTEXT, deadline=None, include_logs=False)
    assert outcome.output == b"hi"


def test_deserialize_rechecks_the_abi(engine: SandboxEngine) -> None:
    data = engine.serialize(engine.compile(_modules.CAT, Abi.WASI_STDIO))
    with pytest.raises(InvocationFailure) as info:
        engine.deserialize(data, Abi.RAW)
    assert info.value.kind is ErrorKind.INVALID_MODULE


def test_deserialize_garbage(engine: SandboxEngine) -> None:
    with pytest.raises(InvocationFailure) as info:
        engine.deserialize(b"\x7fELF not really", Abi.RAW)
    assert info.value.kind is ErrorKind.INVALID_MODULE


def test_fingerprint_tracks_engine_config() -> None:
    a = SandboxEngine(Settings().engine_config)
    b = SandboxEngine(Settings().engine_config)
    c = SandboxEngine(Settings(max_wasm_stack_bytes=256 * 1024).engine_config)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert len(a.fingerprint) == 32


def test_ticker_start_close_idempotent() -> None:
    eng = SandboxEngine(Settings(epoch_tick_ms=1).engine_config)
    assert not eng.running
    eng.start()
    eng.start()
    assert eng.running
    eng.close()
    eng.close()
    assert not eng.running


def test_run_starts_the_ticker() -> None:
    settings = Settings()
    eng = SandboxEngine(settings.engine_config)
    try:
        asked = DeclaredLimits(timeout_ms=100, fuel=settings.max_fuel)
        limits = effective_limits(asked, settings.limit_bounds, None)
        compiled = eng.compile(_modules.INFINITE_LOOP, Abi.RAW)
        with pytest.raises(InvocationFailure) as info:
            run(
                eng,
                compiled,
                b"",
                limits,
                context=ExecutionContext(),
                deadline=None,
                include_logs=False,
            )
        assert info.value.kind is ErrorKind.TIMEOUT
        assert eng.running
    finally:
        eng.close()


def test_effective_limits_defaults_and_caps() -> None:
    s = Settings()
    got = effective_limits(DeclaredLimits(), s.limit_bounds, None)
    assert (got.fuel, got.memory_bytes, got.timeout_ms) == (
        s.default_fuel,
        s.default_memory_bytes,
        s.default_timeout_ms,
    )
    assert got.max_host_calls == s.default_max_host_calls
    asked = DeclaredLimits(fuel=10**12, memory_bytes=1024, timeout_ms=60_000, max_host_calls=0)
    got = effective_limits(asked, s.limit_bounds, None)
    assert got.fuel == s.max_fuel
    assert got.memory_bytes == 1024
    assert got.timeout_ms == s.max_timeout_ms
    assert got.max_host_calls == 0


def test_effective_limits_deadline_and_ceiling() -> None:
    s = Settings()
    tier = DeclaredLimits(fuel=1000, output_bytes=10)
    got = effective_limits(DeclaredLimits(timeout_ms=5000), s.limit_bounds, 250.7, ceiling=tier)
    assert (got.timeout_ms, got.fuel, got.output_bytes) == (250, 1000, 10)
    assert effective_limits(DeclaredLimits(), s.limit_bounds, -5.0).timeout_ms == 0


def test_declared_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="fuel"):
        DeclaredLimits(fuel=0)
    with pytest.raises(ValueError, match="max_host_calls"):
        DeclaredLimits(max_host_calls=-1)


def test_private_wasmtime_api_is_the_verified_version() -> None:
    """app/sandbox/_ffi.py uses wasmtime-py internals verified on 50.0.1 only.

    On an upgrade, re-check _ffi.py (stdin bytes, custom stdio without a
    finalizer, epoch deadline callback, direct calls) and then this pin.
    """
    import importlib.metadata

    from wasmtime import _ffi

    assert importlib.metadata.version("wasmtime") == "50.0.1"
    for name in (
        "wasi_config_set_stdin_bytes",
        "wasi_config_set_stdout_custom",
        "wasi_config_set_stderr_custom",
        "wasmtime_store_epoch_deadline_callback",
        "wasmtime_func_call",
        "wasmtime_instance_export_get",
    ):
        assert hasattr(_ffi, name), name
