"""Successful invocation lines are budgeted per second, per process and per tenant;
failures always get theirs, and the next line written for a tenant says how many of
its successes were left out."""

from __future__ import annotations

import contextlib
from pathlib import Path

import structlog

from app.errors import InvocationFailure
from app.invocation import ExecutionContext, Invocation
from app.runtime import Runtime
from app.settings import Settings
from app.telemetry import LogSampler
from app.telemetry._sampling import TENANT_SHARE
from tests._servers import ROOT


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_of_one_seconds_worth_refills_with_time() -> None:
    clock = Clock()
    sampler = LogSampler(16, clock)  # a tenant's own share: 2 a second
    assert [sampler.admit("a") for _ in range(4)] == [True, True, False, False]
    assert sampler.unlogged("a") == 2
    clock.now += 0.5  # one line's worth
    assert sampler.admit("a") and not sampler.admit("a")
    assert sampler.take_unlogged("a") == 3 and sampler.take_unlogged("a") == 0
    clock.now += 60  # never more than one second's worth saved up
    assert [sampler.admit("a") for _ in range(3)] == [True, True, False]


def test_a_tenant_flooding_successes_leaves_the_others_their_lines() -> None:
    """One bucket for everyone let a flood take every line; the total stays capped."""
    clock = Clock()
    sampler = LogSampler(16, clock)
    flood = sum(sampler.admit("flood") for _ in range(10_000))
    assert flood == 16 // TENANT_SHARE
    others = [sampler.admit(tenant) for tenant in "bcdefgh" for _ in range(2)]
    assert all(others)  # 7 tenants x 2 lines: the rest of the second's 16
    assert not sampler.admit("i")  # its own bucket is full, the process's is spent
    assert sampler.unlogged("flood") == 10_000 - flood and sampler.unlogged("b") == 0
    assert sampler.take_unlogged("i") == 1
    assert sampler.take_unlogged("never-called") == 0


def test_a_rate_below_one_still_admits_one_line() -> None:
    clock = Clock()
    sampler = LogSampler(0.1, clock)
    assert [sampler.admit() for _ in range(3)] == [True, False, False]
    clock.now += 10
    assert sampler.admit()


def test_a_rate_of_zero_admits_every_line() -> None:
    sampler = LogSampler(0, Clock())
    assert all(sampler.admit("a") for _ in range(1000)) and sampler.unlogged("a") == 0


async def test_the_runtime_logs_failures_always_and_counts_the_rest(tmp_path: Path) -> None:
    settings = Settings(
        auth_enabled=False,
        extensions_dir=ROOT / "examples" / "extensions",
        module_cache_dir=tmp_path,
        invocation_log_per_s=0.001,  # one success line, then one per 1,000 s
    )
    context = ExecutionContext(tenant_id="t1")
    async with Runtime(settings) as runtime:
        with structlog.testing.capture_logs() as logs:
            for _ in range(5):
                await runtime.invoke(Invocation(context, "echo", "", b"{}"))
            with contextlib.suppress(InvocationFailure):
                await runtime.invoke(Invocation(context, "no-such-thing", "", b"{}"))
        lines = [entry for entry in logs if entry["event"] == "invocation"]
    assert [line["outcome"] for line in lines] == ["ok", "not_found"]
    assert "unlogged" not in lines[0]
    assert lines[1]["unlogged"] == 4
    counted = runtime.registry.get_sample_value(
        "extensions_runtime_invocations_total",
        {
            "owner": "_platform",
            "extension": "echo",
            "version": "1.0.0",
            "tier": "pure",
            "outcome": "ok",
        },
    )
    assert counted == 5  # metrics count every call
