"""Load from a C load generator: ``h2load`` runs, their per-request logs parsed into ``Calls``.

A Python load generator shares the CPU with the guests it measures beside: on
a busy two-core machine it is starved as much as the service, and its
latencies measure the scheduler (docs/reliability.md has the runs that showed
it). ``h2load`` (Debian ``nghttp2-client``, installed by ``make h2load``)
costs a fraction of that CPU and can be pinned to a core with ``taskset``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench._harness import METHOD, Calls

__all__ = ["h2load_binary", "h2load_flood", "h2load_open_loop"]

PACED_CLIENTS = 4  # connections for paced traffic; the rate is split evenly between them


def h2load_binary() -> str:
    """The ``h2load`` on PATH; a missing one is an error, never a silent fallback."""
    found = shutil.which("h2load")
    if found is None:
        raise SystemExit("h2load not found: run `make h2load` (Debian nghttp2-client)")
    return found


def _command(
    url: str,
    data: Path,
    log_file: Path,
    duration: float,
    headers: dict[str, str] | None,
    *options: str,
) -> list[str]:
    return [
        h2load_binary(),
        "--h1",
        f"--duration={max(1, round(duration))}",
        "--warm-up-time=0",
        f"--data={data}",
        "--header=content-type: application/json",
        *(f"--header={name}: {value}" for name, value in (headers or {}).items()),
        f"--log-file={log_file}",
        *options,
        url.rstrip("/") + METHOD,
    ]


def _pinned(command: list[str], cpu: int | None) -> list[str]:
    if cpu is not None and shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "--cpu-list", str(cpu), *command]
    return command


def _parse(log_file: Path, calls: Calls) -> Calls:
    """Tab-separated: start (µs since epoch), HTTP status, µs until the response ended."""
    for line in log_file.read_text().splitlines():
        _started_us, status, elapsed_us = line.split("\t")[:3]
        calls.add(int(elapsed_us) / 1e6, "ok" if status == "200" else f"http-{status}")
    return calls


@contextlib.contextmanager
def _running(
    url: str,
    duration: float,
    body: bytes,
    headers: dict[str, str] | None,
    cpu: int | None,
    *options: str,
) -> Iterator[Calls]:
    """h2load in the background for ``duration`` s; the ``Calls`` fill in as the block ends."""
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        data, log_file = Path(tmp) / "body.json", Path(tmp) / "requests.tsv"
        data.write_bytes(body)
        command = _command(url, data, log_file, duration, headers, *options)
        calls = Calls()
        proc = subprocess.Popen(
            _pinned(command, cpu), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        try:
            yield calls
        finally:
            _, stderr = proc.communicate(timeout=duration + 120)
            calls.ended = time.perf_counter()
            calls.started = calls.ended - duration
            if proc.returncode != 0:
                raise RuntimeError(f"h2load failed ({proc.returncode}): {stderr[-500:]}")
            _parse(log_file, calls)


def h2load_open_loop(
    url: str,
    rate: float,
    duration: float,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    cpu: int | None = None,
) -> Calls:
    """``rate`` Connect JSON calls a second for ``duration`` s, over HTTP/1.1 connections.

    Latency is h2load's own per-request figure (request written to response
    read); an answer other than 200 is counted as ``http-<status>``.
    """
    clients = max(1, min(PACED_CLIENTS, int(rate)))
    paced = (f"--clients={clients}", "--max-concurrent-streams=1", f"--rps={rate / clients:g}")
    with _running(url, duration, body, headers, cpu, *paced) as calls:
        pass
    return calls


def h2load_flood(
    url: str,
    in_flight: int,
    duration: float,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    cpu: int | None = None,
) -> contextlib.AbstractContextManager[Calls]:
    """``in_flight`` calls at a time, unpaced, for ``duration`` s, in the background.

    Yields at once; the ``Calls`` are filled in when the block ends and h2load is done.
    """
    unpaced = (f"--clients={in_flight}", "--max-concurrent-streams=1")
    return _running(url, duration, body, headers, cpu, *unpaced)
