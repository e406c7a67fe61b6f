"""Making Envoy's workers yield, against threads of this process named like them."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from app.cli import _envoy
from app.cli._envoy import worker_threads


@pytest.fixture
def fake_worker() -> Iterator[int]:
    """A thread of this process named ``wrk:worker_9``, as Envoy names its workers."""
    named, stop = threading.Event(), threading.Event()
    tid: list[int] = []

    def run() -> None:
        tid.append(threading.get_native_id())
        Path(f"/proc/self/task/{tid[0]}/comm").write_text("wrk:worker_9")
        named.set()
        stop.wait()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert named.wait(5)
    yield tid[0]
    stop.set()
    thread.join()


def test_only_threads_named_like_workers_are_made_batch(fake_worker: int) -> None:
    assert worker_threads(os.getpid()) == [fake_worker]
    asyncio.run(_envoy._workers_yield(os.getpid()))
    assert os.sched_getscheduler(fake_worker) == os.SCHED_BATCH
    assert os.sched_getscheduler(threading.get_native_id()) == os.SCHED_OTHER


def test_a_refusal_is_logged_and_startup_goes_on(
    fake_worker: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(_envoy.os, "sched_setscheduler", refuse)
    with structlog.testing.capture_logs() as logs:
        asyncio.run(_envoy._workers_yield(os.getpid()))
    (failed,) = [line for line in logs if line["event"] == "serve.envoy_workers_yield_failed"]
    assert failed["found"] == 1 and "not permitted" in failed["reason"]
    assert os.sched_getscheduler(fake_worker) == os.SCHED_OTHER


def test_a_process_that_is_gone_has_no_workers() -> None:
    assert worker_threads(2**22 + 12345) == []  # above any pid_max default
