"""Guests flooding host functions share one process-wide pace (each call takes the GIL).

A log flood past its budget keeps calling ``host_log``; every call is Python
and takes the GIL the event loop needs. Here four floods on four threads must
together make at most the pacer's rate of paced calls a second, while a guest
inside its allowance never waits for the pacer at all.
"""

from __future__ import annotations

import itertools
import threading
import time
import types
from dataclasses import replace

import pytest

from app.errors import ErrorKind, InvocationFailure
from app.sandbox import Abi, DeclaredLimits, SandboxEngine, _pacer, effective_limits, run
from app.sandbox._pacer import Pacer
from app.sandbox._state import HOST_TIME_UNPACED_S
from app.settings import Settings
from tests.sandbox import _modules
from tests.sandbox.conftest import CONTEXT

RATE = 200  # paced calls a second, process-wide; an unpaced flood makes thousands
FLOODERS = 4


def test_pacer_hands_out_slots_at_its_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    # Five callers at the same instant (a stopped clock: a busy machine pausing this
    # thread between two calls must not read as a shorter interval).
    monkeypatch.setattr(_pacer, "time", types.SimpleNamespace(monotonic=lambda: 1000.0))
    pacer = Pacer(100)
    delays = [pacer.reserve(float("inf")) for _ in range(5)]
    assert delays[0] == 0.0
    # Each reservation lands one interval after the previous one, whoever asks.
    for earlier, later in itertools.pairwise(delays):
        assert later - earlier == pytest.approx(0.01)
    assert pacer.slots == 5
    assert Pacer(0).reserve(float("inf")) == 0.0  # 0: no shared cap


def test_log_floods_on_many_threads_share_one_pace() -> None:
    settings = Settings(host_paced_calls_per_s=RATE)
    limits = replace(
        effective_limits(DeclaredLimits(), settings.limit_bounds, None),
        timeout_ms=1_500,
        log_bytes=4096,
    )
    failures: list[InvocationFailure] = []
    with SandboxEngine(settings.engine_config) as engine:
        flood = engine.compile(_modules.log_flood(1_000_000), Abi.RAW)

        def flooder() -> None:
            try:
                run(engine, flood, b"", limits, context=CONTEXT, deadline=None, include_logs=True)
            except InvocationFailure as failure:
                failures.append(failure)

        # A guest well inside its allowance never waits for (or takes) a slot.
        logger = engine.compile(_modules.LOGGER, Abi.RAW)
        quiet = run(
            engine, logger, b"\x02", limits, context=CONTEXT, deadline=None, include_logs=True
        )
        assert [line.message for line in quiet.logs] == ["hello"]
        assert engine.pacer.slots == 0

        started = time.monotonic()
        threads = [threading.Thread(target=flooder) for _ in range(FLOODERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        elapsed = time.monotonic() - started
        paced = engine.pacer.slots
    # Every flood ran until its deadline (a million lines cannot fit in 1.5 s).
    assert [f.kind for f in failures] == [ErrorKind.TIMEOUT] * FLOODERS
    # Together, past their allowance, they made at most RATE calls a second
    # (plus the one slot each may hold when its deadline ends the wait).
    assert 0 < paced <= RATE * elapsed + FLOODERS, (paced, elapsed)
    assert HOST_TIME_UNPACED_S < 0.01  # the allowance is small next to the deadline


def test_one_tenants_floods_cannot_take_another_tenants_slots() -> None:
    # The schedule is shared by the whole process, so it is a thing one tenant
    # could try to take from another: four flooding threads of one tenant beside
    # one paced caller of another. A caller holds at most one reservation at a
    # time, so slots go round the waiting callers: the other tenant gets its
    # turn once per round, however many threads flood.
    pacer = Pacer(rate=400.0)
    counts: dict[str, int] = {"flood": 0, "other": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + 1.5

    def caller(name: str) -> None:
        while (wait := pacer.reserve(deadline)) is not None:
            time.sleep(wait)
            with lock:
                counts[name] += 1

    threads = [threading.Thread(target=caller, args=("flood",)) for _ in range(4)]
    threads.append(threading.Thread(target=caller, args=("other",)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    per_flooding_thread = counts["flood"] / 4
    assert counts["other"] >= 0.5 * per_flooding_thread, counts  # a fair turn, not starved
    assert counts["flood"] + counts["other"] <= 400 * 1.5 + 5  # and the rate holds for all
