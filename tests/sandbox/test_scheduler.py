"""The scheduler: one place chooses inline or a lane for each run, and learns from every run."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import TypeVar

from app.sandbox import Abi, CompiledModule, Executor, FastPath, Job, Limits, SandboxEngine
from app.sandbox._scheduler import Scheduler
from app.settings import Settings
from tests.sandbox import _modules
from tests.sandbox.conftest import CONTEXT

T = TypeVar("T")


def _job(compiled: CompiledModule, data: bytes, limits: Limits) -> Job:
    return Job(
        compiled=compiled,
        input=data,
        limits=limits,
        context=CONTEXT,
        deadline=time.monotonic() + limits.timeout_ms / 1000,
        include_logs=False,
        bridge=None,
        real_clock_and_random=False,
        config_json=b"{}",
    )


async def test_quick_pure_guests_run_inline_and_blocking_ones_wait_for_a_lane(
    engine: SandboxEngine, limits: Limits
) -> None:
    pooled: list[Awaitable[object]] = []

    def hand_off(waiting: Awaitable[T]) -> Awaitable[T]:  # sees only runs sent to a lane
        pooled.append(waiting)
        return waiting

    settings = Settings()
    scheduler = Scheduler(
        engine,
        Executor(settings.executor_config),
        FastPath(settings.inline_config),
        hand_off=hand_off,
    )
    try:
        echo = engine.compile(_modules.ECHO, Abi.RAW)
        # The first runs pay one-time costs (maybe past the slice, then re-run on a
        # lane); every run is inline or handed off, never both, never neither.
        outcomes = [await scheduler.run(_job(echo, b"hi", limits)) for _ in range(30)]
        assert [o.output for o in outcomes] == [b"hi"] * 30
        assert scheduler.fastpath.inline_runs + len(pooled) == 30
        assert all(o.metrics.queue_us >= 0 for o in outcomes)
        assert echo.runs.runs >= 30  # every run, wherever it ran, is learnt from
        settled = scheduler.fastpath.inline_runs
        for _ in range(10):
            await scheduler.run(_job(echo, b"hi", limits))
        assert scheduler.fastpath.inline_runs >= settled + 7  # a quick guest now runs inline

        inline = scheduler.fastpath.inline_runs
        host_call = engine.compile(_modules.HOST_CALL, Abi.RAW)
        await scheduler.run(_job(host_call, b"{}", limits))  # denied to the guest: no bridge
        assert scheduler.fastpath.inline_runs == inline  # it could block: never inline
        assert len(pooled) == 40 - inline + 1
    finally:
        scheduler.executor.close()
