"""The soak: thousands of mixed invocations at 32 in flight, with the process watched.

Five extensions (raw, wasi-stdio, freestanding C, CPU-bound and one making a
host call to a real loopback upstream) over eight tenants. Every answer is
checked against what that call sent (echo must return *its own* input), so a
mixed-up or leaked response counts as an error, not just a non-200. The
server process's RSS, open file descriptors and threads are sampled from
``/proc`` every ``SAMPLE_EVERY`` calls; the figures compare the first sample
after warm-up with the last. Temp files left in the server's ``TMPDIR`` and
``*.tmp`` files in its module cache are counted at the end.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench._harness import (
    METHOD,
    Calls,
    client,
    log,
    outcome_of,
    proc_stats,
    request_body,
    serve,
)
from tests._servers import thread_server

IN_FLIGHT = 32
TENANTS = 8
SAMPLE_EVERY = 1000


@contextmanager
def graph_upstream() -> Iterator[str]:
    """The ``graph`` service ``enrich`` calls: a real uvicorn on loopback."""

    async def get_node(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"id": body.get("id"), "name": "node"})

    async def ready(_: Request) -> JSONResponse:
        return JSONResponse({"ready": True})

    with thread_server(
        Starlette(
            routes=[
                Route("/graph/GetNode", get_node, methods=["POST"]),
                Route("/readyz", ready, methods=["GET"]),
            ]
        )
    ) as url:
        yield url


def _call(i: int) -> tuple[bytes, Any]:
    """The i-th call of the mix and a check of its answer (``True`` when right)."""
    tenant = f"tenant-{i % TENANTS}"
    kind = i % 10
    if kind < 4:
        value = {"i": i, "tenant": tenant, "pad": "x" * 512}
        return request_body("echo", value, tenant=tenant), lambda out: out == value
    if kind < 6:
        name = f"{tenant}-{i}"
        return request_body("hello", {"name": name}, tenant=tenant), lambda out: name in str(out)
    if kind < 8:
        words = i % 17 + 1
        text = " ".join(["word"] * words)
        return (
            request_body("wordcount", {"text": text}, tenant=tenant),
            lambda out: isinstance(out, dict) and out.get("words") == words,
        )
    if kind == 8:
        return (
            request_body("spin", {"iterations": 50_000}, tenant=tenant),
            lambda out: isinstance(out, dict) and "result" in out,
        )
    node = f"n{i}"
    return (
        request_body("enrich", {"id": node}, tenant=tenant),
        lambda out: (
            isinstance(out, dict) and out.get("enriched", {}).get("body", {}).get("id") == node
        ),
    )


async def _drive(url: str, pid: int, count: int, duration: float) -> dict[str, Any]:
    calls = Calls()
    samples: list[dict[str, Any]] = []
    wrong: list[str] = []
    issued = 0
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + duration
    async with client(url, connections=IN_FLIGHT) as http:

        async def worker() -> None:
            nonlocal issued
            while issued < count and loop.time() < stop_at:
                i = issued
                issued += 1
                body, check = _call(i)
                started = loop.time()
                try:
                    response = await http.post(METHOD, content=body)
                    outcome = outcome_of(response)
                    if outcome == "ok" and not check(response.json().get("outputJson")):
                        outcome = "wrong-output"
                        if len(wrong) < 5:
                            wrong.append(response.text[:300])
                except httpx.HTTPError as exc:
                    outcome = f"client-{type(exc).__name__}"
                calls.add(loop.time() - started, outcome)
                done = len(calls.latencies_ms)
                if done % SAMPLE_EVERY == 0:
                    samples.append({"calls": done, **proc_stats(pid)})
                    log(f"soak: {done}/{count} calls, {proc_stats(pid)}")

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    calls.ended = loop.time()
    samples.append({"calls": len(calls.latencies_ms), **proc_stats(pid)})
    return {"calls": calls, "samples": samples, "wrong": wrong}


def _leftovers(work: Path) -> list[str]:
    tmp = [str(p) for p in (work / "tmp").rglob("*")]
    cache = [str(p) for p in (work / "cache").rglob("*") if ".tmp" in p.name]
    return tmp + cache


def soak(work: Path, count: int, duration: float) -> dict[str, Any]:
    """Run the soak; ``count`` calls or ``duration`` seconds, whichever ends first."""
    with graph_upstream() as graph:
        env = {
            "EXTENSIONS_RUNTIME_HOSTCALL_SERVICES": json.dumps({"graph": graph}),
            "EXTENSIONS_RUNTIME_EXTENSIONS_DIR": str(work / "extensions"),
        }
        with serve(work, "soak", **env) as service:
            before = proc_stats(service.pid)
            result = asyncio.run(_drive(service.url, service.pid, count, duration))
            after = proc_stats(service.pid)
            server_up = httpx.get(service.url + "/healthz", timeout=5).status_code == 200
    calls: Calls = result["calls"]
    samples: list[dict[str, Any]] = result["samples"]
    warm = samples[1] if len(samples) > 2 else samples[0]  # first sample after warm-up
    last = samples[-1]
    summary = calls.summary()
    unexpected = {k: v for k, v in summary["outcomes"].items() if k != "ok"}
    report = {
        "in_flight": IN_FLIGHT,
        "tenants": TENANTS,
        **summary,
        "unexpected_outcomes": unexpected,
        "wrong_output_examples": result["wrong"],
        "server_before": before,
        "server_after_warmup": warm,
        "server_at_end": last,
        "server_after": after,
        "rss_growth_after_warmup_pct": round(
            100.0 * (last["rss_kib"] - warm["rss_kib"]) / warm["rss_kib"], 1
        ),
        "fd_growth_after_warmup": last["open_fds"] - warm["open_fds"],
        "max_threads": max(s["threads"] for s in samples),
        "temp_files_left": _leftovers(work),
        "server_up_after": server_up,
        "samples": samples,
    }
    log(
        f"soak: {summary['calls']} calls, {summary['rps']} rps, unexpected {unexpected}, "
        f"RSS {warm['rss_kib']} -> {last['rss_kib']} KiB "
        f"({report['rss_growth_after_warmup_pct']}%), fds {warm['open_fds']} -> "
        f"{last['open_fds']}, threads max {report['max_threads']}, "
        f"temp files left {len(report['temp_files_left'])}"
    )
    return report
