"""Throughput and latency rows from h2load (C), over h2c, for all three protocols.

A Python load generator measures itself (issue 19: httpx's HTTP/1.1 client
was slower than the service it drove). ``h2load`` speaks HTTP/2 with prior
knowledge, so one pre-built body file per protocol is enough:

* Connect JSON: ``application/json``, the request as JSON text;
* Connect binary: ``application/proto``, the serialized request;
* gRPC: ``application/grpc`` with ``te: trailers``, the 5-byte gRPC frame
  around the serialized request.

h2load only sees HTTP statuses; a gRPC error travels in trailers with status
200, so each run is paired with a Python client row that checks the answers
(``bench/_load.py``). Per-request times come from h2load's log file, so the
percentiles are ours, not an average.

CPU per call is counted from ``/proc`` over the server's whole process tree
(Envoy's threads included): user + system ticks before and after the run,
divided by the calls answered. Noise from other work on a shared machine
moves it far less than it moves wall-clock figures.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from protobuf import Oneof

from bench._h2load import h2load_binary

__all__ = ["PROTOCOLS", "cpu_seconds", "h2load_run", "request_body"]

METHOD = "/ameide.extensions.v1.WasmExtensionRuntime/InvokeExtension"
PROTOCOLS = ("connect-json", "connect-proto", "grpc")
_HEADERS = {
    "connect-json": ("content-type: application/json",),
    "connect-proto": ("content-type: application/proto",),
    "grpc": ("content-type: application/grpc", "te: trailers"),
}
_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def request_body(protocol: str, extension: str, payload: Any) -> bytes:
    """The exact bytes one call sends, for ``protocol``."""
    context = {"tenantId": "bench", "organizationId": "o", "userId": "u"}
    if protocol == "connect-json":
        body = {"extensionId": extension, "inputJson": payload, "context": context}
        return json.dumps(body, separators=(",", ":")).encode()
    message = runtime_pb.InvokeExtensionRequest(
        extension_id=extension,
        input=Oneof("input_bytes", json.dumps(payload).encode()),
        context=runtime_pb.ExecutionContext(tenant_id="bench", organization_id="o", user_id="u"),
    )
    encoded = message.to_binary()
    if protocol == "grpc":
        return b"\x00" + len(encoded).to_bytes(4, "big") + encoded
    return encoded


def _tree(pid: int) -> list[int]:
    """``pid`` and every descendant, from ``/proc/*/stat``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid``'s process tree so far (all threads)."""
    total = 0
    for member in _tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total * _TICK_S


def _finished_rps(stdout: str) -> float:
    """h2load's own rate over the measured period ("finished in 10.00s, 1234.5 req/s, ...")."""
    for line in stdout.splitlines():
        if line.startswith("finished in"):
            return float(line.split(",")[1].split()[0])
    raise RuntimeError(f"h2load printed no summary: {stdout[-300:]}")


def h2load_run(
    url: str,
    protocol: str,
    body: bytes,
    *,
    in_flight: int,
    duration_s: float,
    server_pid: int | None = None,
    cpu: int | None = None,
) -> dict[str, Any]:
    """One h2load run: ``in_flight`` streams (4 connections beyond 4), for ``duration_s``.

    Returns p50/p95/p99 in µs, requests/s, non-200 answers (``statuses``: how
    many of each; h2load logs a stream it did not finish as status -1), and, with
    ``server_pid``, the server tree's CPU milliseconds per answered call.
    """
    clients = min(in_flight, 4)
    streams = max(1, in_flight // clients)
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        data, log_file = Path(tmp) / "body", Path(tmp) / "log.tsv"
        data.write_bytes(body)
        command = [
            h2load_binary(),
            f"--duration={max(1, round(duration_s))}",
            "--warm-up-time=0",  # the CPU count covers the whole run, so must the calls
            f"--clients={clients}",
            f"--max-concurrent-streams={streams}",
            f"--data={data}",
            *(f"--header={header}" for header in _HEADERS[protocol]),
            f"--log-file={log_file}",
            url.rstrip("/") + METHOD,
        ]
        if cpu is not None:
            command = ["taskset", "--cpu-list", str(cpu), *command]
        cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=duration_s + 120, check=False
        )
        cpu_used = cpu_seconds(server_pid) - cpu_before if server_pid else 0.0
        if done.returncode != 0:
            raise RuntimeError(f"h2load failed ({done.returncode}): {done.stderr[-400:]}")
        rps = _finished_rps(done.stdout)
        times, errors = [], {}
        for line in log_file.read_text().splitlines():
            _started, status, elapsed_us = line.split("\t")[:3]
            if status == "200":
                times.append(int(elapsed_us))
            else:
                errors[status] = errors.get(status, 0) + 1
    if not times:
        raise RuntimeError(f"h2load: no call answered 200 (others: {errors})")
    times.sort()

    def pct(q: float) -> float:
        return float(times[min(len(times) - 1, int(len(times) * q))])

    return {
        "p50_us": statistics.median(times),
        "p95_us": pct(0.95),
        "p99_us": pct(0.99),
        "mean_us": statistics.fmean(times),
        "rps": rps,
        "requests": len(times),
        "errors": sum(errors.values()),
        "statuses": errors,
        "cpu_ms_per_call": cpu_used * 1e3 / len(times) if server_pid else None,
    }
