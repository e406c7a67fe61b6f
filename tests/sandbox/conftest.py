from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from app.errors import ErrorKind, InvocationFailure
from app.invocation import ExecutionContext, Outcome
from app.sandbox import (
    Abi,
    CompiledModule,
    DeclaredLimits,
    Limits,
    SandboxEngine,
    effective_limits,
    run,
)
from app.settings import Settings
from tests.sandbox import _modules

CONTEXT = ExecutionContext(tenant_id="t-1", organization_id="o-1", user_id="u-1", request_id="r-1")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[SandboxEngine]:
    with SandboxEngine(settings.engine_config) as eng:
        yield eng


@pytest.fixture(scope="session")
def limits(settings: Settings) -> Limits:
    """Small, fast limits for hostile modules."""
    return replace(
        effective_limits(DeclaredLimits(), settings.limit_bounds, None),
        fuel=50_000_000,
        memory_bytes=16 * 1024 * 1024,
        timeout_ms=2_000,
        output_bytes=64 * 1024,
        log_bytes=4 * 1024,
        max_host_calls=4,
    )


@pytest.fixture(scope="session")
def compile_module(engine: SandboxEngine) -> Callable[..., CompiledModule]:
    cache: dict[tuple[bytes, Abi], CompiledModule] = {}

    def compile_(wasm: bytes, abi: Abi = Abi.RAW) -> CompiledModule:
        if (wasm, abi) not in cache:
            cache[(wasm, abi)] = engine.compile(wasm, abi)
        return cache[(wasm, abi)]

    return compile_


Runner = Callable[..., Outcome]


@pytest.fixture(scope="session")
def invoke(
    engine: SandboxEngine, limits: Limits, compile_module: Callable[..., CompiledModule]
) -> Runner:
    """Run a module with the test limits; keyword overrides for limits and run()."""

    def invoke_(wasm: bytes, data: bytes = b"", *, abi: Abi = Abi.RAW, **overrides: Any) -> Outcome:
        limit_fields = {k: overrides.pop(k) for k in list(overrides) if hasattr(limits, k)}
        kwargs: dict[str, Any] = {"context": CONTEXT, "deadline": None, "include_logs": True}
        kwargs.update(overrides)
        return run(
            engine, compile_module(wasm, abi), data, replace(limits, **limit_fields), **kwargs
        )

    return invoke_


@pytest.fixture
def fails(invoke: Runner) -> Callable[..., InvocationFailure]:
    """Run a module that must fail; returns the failure after checking the engine still works."""

    def fails_(wasm: bytes, kind: ErrorKind, data: bytes = b"", **kw: Any) -> InvocationFailure:
        with pytest.raises(InvocationFailure) as info:
            invoke(wasm, data, **kw)
        assert info.value.kind is kind, info.value
        assert info.value.metrics is not None
        assert_healthy(invoke)
        return info.value

    return fails_


def assert_healthy(invoke: Runner) -> None:
    """A good module still runs on the same engine after a hostile one."""
    assert invoke(_modules.ECHO, b"still alive").output == b"still alive"
