"""Executor: bounded admission, queue deadlines, cancellation reaching the guest."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import structlog

from app.errors import ErrorKind, InvocationFailure
from app.invocation import Outcome
from app.sandbox import CompiledModule, Executor, Limits, SandboxEngine, run
from app.settings import Settings
from tests.sandbox import _modules
from tests.sandbox.conftest import CONTEXT


@pytest.fixture
def executor() -> Iterator[Executor]:
    # One tenant may use the whole lane here; the tenant share has tests of its own.
    ex = Executor(
        Settings(executor_threads=1, executor_queue=1, executor_tenant_share=1.0).executor_config
    )
    yield ex
    ex.close()


def blocker(release: threading.Event) -> Callable[[threading.Event], str]:
    def job(cancel: threading.Event) -> str:
        release.wait(5)
        return "done"

    return job


async def test_result_and_queue_time(executor: Executor) -> None:
    result, queue_us = await executor.submit(lambda cancel: 41 + 1, deadline=None)
    assert result == 42
    assert queue_us >= 0
    assert executor.in_flight == 0


async def test_full_queue_is_overloaded_at_once(executor: Executor) -> None:
    release = threading.Event()
    running = asyncio.ensure_future(executor.submit(blocker(release), deadline=None))
    queued = asyncio.ensure_future(executor.submit(blocker(release), deadline=None))
    await asyncio.sleep(0.05)
    # "At once" is an order, not a time: the refusal comes from the coroutine's first
    # step, before it has awaited anything (no thread, no timer, no other task).
    refused = executor.submit(lambda cancel: None, deadline=None)
    with pytest.raises(InvocationFailure) as info:
        refused.send(None)
    assert info.value.kind is ErrorKind.OVERLOADED
    release.set()
    assert [r for r, _ in await asyncio.gather(running, queued)] == ["done", "done"]
    assert executor.in_flight == 0


async def test_deadline_passing_in_queue_times_out_without_running(executor: Executor) -> None:
    release = threading.Event()
    ran = threading.Event()
    running = asyncio.ensure_future(executor.submit(blocker(release), deadline=None))
    await asyncio.sleep(0.02)
    with pytest.raises(InvocationFailure) as info:
        await executor.submit(lambda cancel: ran.set(), deadline=time.monotonic() + 0.1)
    assert info.value.kind is ErrorKind.TIMEOUT
    assert "while queued" in info.value.message
    # The deadline ended the wait, not the job ahead finishing: it still holds the thread.
    assert not running.done()
    release.set()
    await running
    await asyncio.sleep(0.02)
    assert not ran.is_set()
    assert executor.in_flight == 0


async def test_exceptions_propagate(executor: Executor) -> None:
    def boom(cancel: threading.Event) -> None:
        raise InvocationFailure(ErrorKind.TRAP, "boom")

    with pytest.raises(InvocationFailure, match="boom"):
        await executor.submit(boom, deadline=None)
    assert executor.in_flight == 0


async def test_cancelled_caller_stops_the_guest(
    executor: Executor,
    engine: SandboxEngine,
    limits: Limits,
    compile_module: Callable[..., CompiledModule],
) -> None:
    compiled = compile_module(_modules.INFINITE_LOOP)
    # Stopped only by its 60 s timeout or by the cancel; the message tells which.
    endless = replace(limits, fuel=10**15, timeout_ms=60_000)
    outcome: list[BaseException] = []
    started = threading.Event()

    def job(cancel: threading.Event) -> Outcome:
        started.set()
        try:
            return run(
                engine,
                compiled,
                b"",
                endless,
                context=CONTEXT,
                deadline=None,
                include_logs=False,
                cancel=cancel,
            )
        except InvocationFailure as failure:
            outcome.append(failure)
            raise

    task = asyncio.ensure_future(executor.submit(job, deadline=None))
    assert await asyncio.to_thread(started.wait, 30), "the guest never started"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(3000):  # until the guest has stopped and freed its slot (well under 60 s)
        if not executor.in_flight:
            break
        await asyncio.sleep(0.01)
    assert executor.in_flight == 0
    assert isinstance(outcome[0], InvocationFailure)
    assert outcome[0].kind is ErrorKind.TIMEOUT and "cancelled" in outcome[0].message


async def test_closed_executor_is_unavailable() -> None:
    ex = Executor(Settings(executor_threads=1, executor_queue=0).executor_config)
    ex.close()
    with pytest.raises(InvocationFailure) as info:
        await ex.submit(lambda cancel: None, deadline=None)
    assert info.value.kind is ErrorKind.UNAVAILABLE


async def test_guest_logs_carry_the_callers_log_context(
    executor: Executor,
    engine: SandboxEngine,
    limits: Limits,
    compile_module: Callable[..., CompiledModule],
) -> None:
    compiled = compile_module(_modules.LOGGER)

    def job(cancel: threading.Event) -> Outcome:
        return run(
            engine,
            compiled,
            b"\x03",
            limits,
            context=CONTEXT,
            deadline=None,
            include_logs=False,
            cancel=cancel,
        )

    with (
        structlog.testing.capture_logs(
            processors=[structlog.contextvars.merge_contextvars]
        ) as logs,
        structlog.contextvars.bound_contextvars(extension="ext-1", version="1.2.0"),
    ):
        outcome, _ = await executor.submit(job, deadline=None)
    assert outcome.logs == []  # not asked for, but still logged for operators
    (line,) = [entry for entry in logs if entry["event"] == "guest_log"]
    assert line["log_level"] == "warning"
    assert line["guest_message"] == "hello"
    assert (line["extension"], line["version"]) == ("ext-1", "1.2.0")
    assert (line["tenant"], line["request_id"]) == ("t-1", "r-1")


async def test_lanes_have_their_own_threads_and_bounds() -> None:
    ex = Executor(
        Settings(
            executor_threads=1,
            executor_long_threads=1,
            executor_io_threads=3,
            executor_queue=0,
            executor_tenant_share=1.0,  # one tenant fills each lane here
        ).executor_config
    )
    release = threading.Event()
    try:
        long = asyncio.ensure_future(ex.submit(blocker(release), deadline=None, lane="long"))
        waiting = [
            asyncio.ensure_future(ex.submit(blocker(release), deadline=None, lane="io"))
            for _ in range(3)
        ]
        for _ in range(1000):  # until all four hold their threads (no wall-clock bound)
            if ex.in_flight == 4:
                break
            await asyncio.sleep(0.01)
        # The long lane is full with one computation, the io lane with three waits...
        for lane in ("long", "io"):
            with pytest.raises(InvocationFailure) as info:
                await ex.submit(lambda cancel: None, deadline=None, lane=lane)  # type: ignore[arg-type]
            assert info.value.kind is ErrorKind.OVERLOADED
            assert f"for {lane} guests" in info.value.message
        # ...and a short guest still runs, while every one of them is still blocked:
        # it waited for none of them (an ordering, not a time bound).
        short = ex.submit(lambda cancel: "short", deadline=None)
        result, _queue_us = await asyncio.wait_for(short, timeout=60)  # fails, never hangs
        assert result == "short"
        assert not long.done() and not any(task.done() for task in waiting)
        assert ex.in_flight == 4
        release.set()
        await asyncio.gather(long, *waiting)
        assert ex.in_flight == 0
    finally:
        release.set()
        ex.close()


def test_long_and_io_lane_threads_run_at_lower_priority() -> None:
    ex = Executor(Settings(executor_threads=1).executor_config)
    try:
        seen = {
            lane: asyncio.run(
                ex.submit(
                    lambda cancel: os.getpriority(os.PRIO_PROCESS, 0), deadline=None, lane=lane
                )  # type: ignore[arg-type]
            )[0]
            for lane in ("short", "long", "io")
        }
    finally:
        ex.close()
    assert seen["long"] == seen["io"] == seen["short"] + 10


async def test_one_tenant_holds_at_most_half_the_io_lane() -> None:
    ex = Executor(
        Settings(executor_threads=1, executor_io_threads=4, executor_queue=16).executor_config
    )
    release = threading.Event()
    try:
        hung = [
            asyncio.ensure_future(
                ex.submit(blocker(release), deadline=None, lane="io", tenant="noisy")
            )
            for _ in range(10)
        ]
        await asyncio.sleep(0.05)
        # Two of four threads are the noisy tenant's; its other eight wait on their own.
        result, _queue_us = await asyncio.wait_for(  # behind all ten it would wait forever
            ex.submit(lambda cancel: "mine", deadline=None, lane="io", tenant="quiet"), 60
        )
        assert result == "mine"
        # Served while every one of the noisy tenant's jobs is still held: an order.
        assert not any(task.done() for task in hung)
        assert ex.in_flight == 10
        release.set()
        assert [r for r, _ in await asyncio.gather(*hung)] == ["done"] * 10
        assert ex.in_flight == 0
    finally:
        release.set()
        ex.close()


async def test_a_parked_job_past_its_deadline_times_out_and_frees_its_slot() -> None:
    ex = Executor(
        Settings(executor_threads=1, executor_long_threads=1, executor_queue=4).executor_config
    )
    release = threading.Event()
    ran = threading.Event()
    try:
        first = asyncio.ensure_future(
            ex.submit(blocker(release), deadline=None, lane="long", tenant="a")
        )
        await asyncio.sleep(0.02)
        with pytest.raises(InvocationFailure) as info:  # parked behind its tenant's first job
            await ex.submit(
                lambda cancel: ran.set(),
                deadline=time.monotonic() + 0.1,
                lane="long",
                tenant="a",
            )
        assert info.value.kind is ErrorKind.TIMEOUT
        assert ex.in_flight == 1
        release.set()
        await first
        result, _ = await ex.submit(lambda cancel: "next", deadline=None, lane="long", tenant="a")
        assert result == "next" and not ran.is_set()
        assert ex.in_flight == 0
    finally:
        release.set()
        ex.close()


async def test_close_answers_parked_and_queued_callers() -> None:
    ex = Executor(
        Settings(executor_threads=1, executor_long_threads=1, executor_queue=4).executor_config
    )
    release = threading.Event()
    running = threading.Event()

    def first(cancel: threading.Event) -> str:
        running.set()
        return blocker(release)(cancel)

    jobs = [
        asyncio.ensure_future(ex.submit(job, deadline=None, lane="long", tenant=t))
        for job, t in ((first, "a"), (blocker(release), "a"), (blocker(release), "b"))
    ]
    # The first is running (a nice +10 thread may start late on a busy machine); the
    # second is parked behind it, the third queued for the one thread.
    assert await asyncio.to_thread(running.wait, 30)
    ex.close(wait=False)
    release.set()
    results = await asyncio.gather(*jobs, return_exceptions=True)
    assert results[0] == ("done", results[0][1])  # type: ignore[index]
    for waiting in results[1:]:
        assert isinstance(waiting, InvocationFailure) and waiting.kind is ErrorKind.UNAVAILABLE


async def test_one_tenant_holds_at_most_its_share_of_threads_and_waiting_slots() -> None:
    """io lane: 4 threads + 8 waiting = 12 slots; at share 0.5 a tenant holds 6."""
    ex = Executor(
        Settings(executor_io_threads=4, executor_queue=8, executor_tenant_share=0.5).executor_config
    )
    release = threading.Event()
    try:
        flood = [
            asyncio.ensure_future(ex.submit(blocker(release), deadline=None, lane="io", tenant="a"))
            for _ in range(20)
        ]
        await asyncio.sleep(0.1)
        refused = [task for task in flood if task.done()]
        assert len(refused) == 14  # 20 - 6, at once, while the first 6 still wait
        for task in refused:
            failure = task.exception()
            assert isinstance(failure, InvocationFailure)
            assert failure.kind is ErrorKind.OVERLOADED
            assert failure.retry_after_ms > 0
            assert "share" in failure.message
        assert ex.in_flight == 6
        # Another tenant is served at once, on the threads tenant a may not take.
        other = await asyncio.wait_for(
            ex.submit(lambda cancel: "b", deadline=None, lane="io", tenant="b"), 2
        )
        assert other[0] == "b"
        release.set()
        results = await asyncio.gather(*flood, return_exceptions=True)
        ran = [r for r in results if not isinstance(r, BaseException)]
        assert [value for value, _ in ran] == ["done"] * 6
        assert ex.in_flight == 0
        # Freed slots are tenant a's again.
        assert (await ex.submit(lambda cancel: 1, deadline=None, lane="io", tenant="a"))[0] == 1
    finally:
        release.set()
        ex.close()


async def test_the_share_applies_to_the_short_lane_too() -> None:
    ex = Executor(
        Settings(executor_threads=1, executor_queue=3, executor_tenant_share=0.5).executor_config
    )
    release = threading.Event()
    try:
        held = [
            asyncio.ensure_future(ex.submit(blocker(release), deadline=None, tenant="a"))
            for _ in range(2)
        ]
        await asyncio.sleep(0.05)
        with pytest.raises(InvocationFailure) as info:
            await ex.submit(lambda cancel: None, deadline=None, tenant="a")
        assert info.value.kind is ErrorKind.OVERLOADED
        queued_b = asyncio.ensure_future(ex.submit(lambda cancel: "b", deadline=None, tenant="b"))
        await asyncio.sleep(0.05)
        assert not queued_b.done()  # waiting in the slot tenant a could not take
        release.set()
        assert (await queued_b)[0] == "b"
        await asyncio.gather(*held)
    finally:
        release.set()
        ex.close()


# -- admission by work in the short lane -------------------------------------------


def _work_executor(**settings: object) -> Executor:
    base = {"executor_threads": 1, "executor_queue": 2, "executor_tenant_share": 1.0}
    return Executor(Settings(**{**base, **settings}).executor_config)  # type: ignore[arg-type]


async def test_a_burst_of_cheap_calls_waits_instead_of_being_refused() -> None:
    """128 calls of a ~100 us module fit where three slots would refuse 125 of them."""
    ex = _work_executor()
    release = threading.Event()
    try:
        calls = [
            asyncio.ensure_future(ex.submit(blocker(release), deadline=None, cost_us=100.0))
            for _ in range(128)
        ]
        await asyncio.sleep(0.05)
        assert ex.in_flight == 128
        assert ex.rejections == 0
        release.set()
        assert {r for r, _ in await asyncio.gather(*calls)} == {"done"}
    finally:
        release.set()
        ex.close()


async def test_costly_and_unknown_calls_still_take_a_whole_slot_each() -> None:
    ex = _work_executor()
    release = threading.Event()
    try:
        held = [
            asyncio.ensure_future(ex.submit(blocker(release), deadline=None, cost_us=cost))
            for cost in (50_000.0, None, 6_000.0)  # a slot or more each: 1 thread + 2 waiting
        ]
        await asyncio.sleep(0.05)
        for cost in (50_000.0, None, 100.0):
            refused = ex.submit(lambda cancel: None, deadline=None, cost_us=cost)
            with pytest.raises(InvocationFailure) as info:
                refused.send(None)
            assert info.value.kind is ErrorKind.OVERLOADED
        assert ex.rejections == 3
        release.set()
        await asyncio.gather(*held)
    finally:
        release.set()
        ex.close()


async def test_the_short_lane_holds_at_most_short_max_calls_however_cheap() -> None:
    ex = _work_executor(executor_short_max=10)
    release = threading.Event()
    try:
        held = [
            asyncio.ensure_future(ex.submit(blocker(release), deadline=None, cost_us=1.0))
            for _ in range(10)
        ]
        await asyncio.sleep(0.05)
        refused = ex.submit(lambda cancel: None, deadline=None, cost_us=1.0)
        with pytest.raises(InvocationFailure) as info:
            refused.send(None)
        assert info.value.kind is ErrorKind.OVERLOADED
        release.set()
        await asyncio.gather(*held)
        assert ex.in_flight == 0
    finally:
        release.set()
        ex.close()


async def test_one_tenants_cheap_flood_leaves_room_for_another() -> None:
    """By count too: a tenant's share of ``short_max``, so its flood cannot fill the lane."""
    ex = _work_executor(executor_short_max=20, executor_tenant_share=0.5)
    release = threading.Event()
    try:
        flood = []
        for _ in range(30):
            call = ex.submit(blocker(release), deadline=None, tenant="noisy", cost_us=1.0)
            flood.append(asyncio.ensure_future(call))
        await asyncio.sleep(0.05)
        refused = [f for f in flood if f.done() and f.exception() is not None]
        assert len(refused) == 20  # 10 admitted: half of short_max
        assert {f.exception().kind for f in refused} == {ErrorKind.OVERLOADED}  # type: ignore[union-attr]
        other = asyncio.ensure_future(
            ex.submit(blocker(release), deadline=None, tenant="quiet", cost_us=1.0)
        )
        await asyncio.sleep(0.05)
        assert not other.done()  # admitted, waiting for the thread
        release.set()
        assert (await other)[0] == "done"
        await asyncio.gather(*flood, return_exceptions=True)
    finally:
        release.set()
        ex.close()


async def test_the_load_returns_to_zero_after_failures_and_cancellations() -> None:
    ex = _work_executor()
    release = threading.Event()
    try:

        def boom(cancel: threading.Event) -> None:
            raise ValueError("guest fault")

        with pytest.raises(ValueError):
            await ex.submit(boom, deadline=None, cost_us=300.0)
        waiting = [
            asyncio.ensure_future(ex.submit(blocker(release), deadline=None, cost_us=300.0))
            for _ in range(5)
        ]
        await asyncio.sleep(0.05)
        for call in waiting[1:]:
            call.cancel()
        release.set()
        await asyncio.gather(*waiting, return_exceptions=True)
        await asyncio.sleep(0.05)
        lane = ex._lanes["short"]
        assert (lane.admitted, lane.load, dict(lane.load_by), dict(lane.count_by)) == (0, 0, {}, {})
    finally:
        release.set()
        ex.close()
