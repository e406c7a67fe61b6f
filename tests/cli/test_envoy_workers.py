"""Envoy's worker threads yield to the Python event loop (SCHED_BATCH) when asked, and
only they do; by default nothing changes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from app.cli._envoy import worker_threads
from tests._clients import connect_json
from tests._servers import cli_server

pytestmark = pytest.mark.integration  # subprocesses


def _policies(pid: int) -> dict[str, set[int]]:
    """Scheduling policy of every thread of ``pid``, by whether it is an Envoy worker."""
    workers = set(worker_threads(pid))
    seen: dict[str, set[int]] = {"workers": set(), "others": set()}
    for task in Path(f"/proc/{pid}/task").iterdir():
        kind = "workers" if int(task.name) in workers else "others"
        seen[kind].add(os.sched_getscheduler(int(task.name)))
    return seen


def _envoy_pid(url: str) -> int:
    pid = httpx.get(url + "/readyz", timeout=10).json()["pid"]  # the app runs inside Envoy
    assert isinstance(pid, int)
    return pid


def _serve_listening(log: Path) -> None:
    """Until ``serve`` says it listens: it has then dealt with every Envoy's workers
    (Envoy answers before that, so /readyz alone would race it)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if '"serve.listening"' in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"serve never said it listens: {log.read_text()[-2000:]}")


def _echo_answers(url: str) -> None:
    body = {"extensionId": "echo", "inputJson": {"a": 1}, "context": {"tenantId": "t"}}
    answer = connect_json(url, body)
    assert answer.status_code == 200, answer.text


def test_asked_to_yield_workers_are_batch_threads_and_python_keeps_its_priority(
    tmp_path: Path,
) -> None:
    log = tmp_path / "serve.log"
    env = {"EXTENSIONS_RUNTIME_ENVOY_WORKERS_YIELD": "true"}
    with cli_server("pyvoy", env=env, log_path=log) as url:
        _serve_listening(log)
        _echo_answers(url)
        seen = _policies(_envoy_pid(url))
    assert seen["workers"] == {os.SCHED_BATCH}
    # The main thread, the event loop's thread, the epoch ticker: none changed.
    assert seen["others"] == {os.SCHED_OTHER}


def test_by_default_every_thread_is_left_as_it_was(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with cli_server("pyvoy", log_path=log) as url:
        _serve_listening(log)
        _echo_answers(url)
        seen = _policies(_envoy_pid(url))
    assert seen["workers"] == {os.SCHED_OTHER}  # the workers exist, and were left alone
    assert seen["others"] == {os.SCHED_OTHER}
