"""Injected faults, each with traffic running through it: what callers saw and when it healed.

Every scenario drives steady calls from a background thread (``Traffic``),
marks the moments a fault begins and ends, and splits the calls into
``before`` / ``during`` / ``after`` windows. Recovery time is from the end of
the fault to the first good answer of the affected stream; "nothing lost"
is checked by the answer itself (the expected output, the promoted version).

1. storage: the S3 server (SeaweedFS ``weed mini``) is SIGKILLed mid-run and
   restarted on the same ports and data; cached versions keep serving, an
   uncached one fails fast and works again once storage is back;
2. host-call upstream: the ``graph`` service ``enrich`` calls hangs, resets
   connections, then answers garbage (a raw TCP server playing each part);
3. promotion webhook flood: thousands of unsigned, badly signed and signed
   events while good traffic runs, with one real promotion among them;
4. policy file: replaced by invalid YAML, then by binary junk; the last good
   policy stays in force (a fuel ceiling that only it imposes still bites),
   the failure is counted on /metrics and logged, a good edit applies.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.catalog import EVENT_TYPE, SIGNATURE_HEADER, sign
from bench._harness import (
    METHOD,
    ROOT,
    log,
    metric,
    outcome_of,
    proc_stats,
    request_body,
    serve,
)
from tests._s3 import SeaweedS3
from tests.integration._storage import WEBHOOK_SECRET, S3Bucket, example_module

Check = Callable[[httpx.Response], str]


# -- traffic with a timeline -------------------------------------------------------------


@dataclass
class Stream:
    """Calls of one kind at a fixed rate; ``check`` turns an answer into an outcome."""

    name: str
    rate: float
    body: Callable[[int], bytes]
    check: Check = outcome_of


@dataclass
class Traffic:
    """Runs streams on a loop in a thread of its own and records ``(t, stream, outcome, ms)``."""

    url: str
    streams: list[Stream]
    records: list[tuple[float, str, str, float]] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def mark(self, name: str) -> None:
        self.marks[name] = time.monotonic()
        log(f"  fault timeline: {name}")

    def __enter__(self) -> Traffic:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=60)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=self.url, limits=limits, timeout=30) as http:
            tasks: set[asyncio.Task[None]] = set()

            async def one(stream: Stream, i: int) -> None:
                started = time.monotonic()
                try:
                    response = await http.post(
                        METHOD, content=stream.body(i), headers={"content-type": "application/json"}
                    )
                    outcome = stream.check(response)
                except httpx.HTTPError as exc:
                    outcome = f"client-{type(exc).__name__}"
                self.records.append(
                    (started, stream.name, outcome, (time.monotonic() - started) * 1000)
                )

            async def drive(stream: Stream) -> None:
                loop = asyncio.get_running_loop()
                start, i = loop.time(), 0
                while not self._stop.is_set():
                    delay = start + i / stream.rate - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    task = asyncio.create_task(one(stream, i))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    i += 1

            await asyncio.gather(*(drive(stream) for stream in self.streams))
            if tasks:
                await asyncio.wait(tasks, timeout=30)

    def window(self, stream: str, start: str | None, end: str | None) -> dict[str, Any]:
        """Outcomes and latency of calls of ``stream`` started between two marks."""
        lo = self.marks[start] if start else 0.0
        hi = self.marks[end] if end else float("inf")
        picked = [r for r in self.records if r[1] == stream and lo <= r[0] < hi]
        latencies = sorted(r[3] for r in picked)

        def pct(p: float) -> float:
            return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1)

        return {
            "calls": len(picked),
            "outcomes": dict(Counter(r[2] for r in picked)),
            "p50_ms": pct(0.5) if latencies else None,
            "p95_ms": pct(0.95) if latencies else None,
            "max_ms": round(latencies[-1], 1) if latencies else None,
        }

    def recovery_s(self, stream: str, after: str, until: str | None = None) -> float | None:
        """Seconds from mark ``after`` to the first call of ``stream`` started then that was ok
        and after which every call was ok (up to mark ``until``)."""
        since = self.marks[after]
        end = self.marks[until] if until else float("inf")
        picked = sorted(r for r in self.records if r[1] == stream and since <= r[0] < end)
        last_bad = max((r[0] for r in picked if r[2] != "ok"), default=None)
        firsts = [r[0] for r in picked if r[2] == "ok" and (last_bad is None or r[0] > last_bad)]
        return round(firsts[0] - since, 2) if firsts else None

    def settle(self, stream: str, since: str, timeout: float) -> None:
        """Wait until ``stream`` has answered ok for two seconds in a row after ``since``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.5)
            first_ok = self.recovery_s(stream, since)
            if first_ok is not None and time.monotonic() - self.marks[since] - first_ok > 2:
                return

    def phases(self, stream: str, marks: list[str]) -> dict[str, Any]:
        bounds = [None, *marks, None]
        names = ["before", *marks]
        return {
            name: self.window(stream, lo, hi)
            for name, lo, hi in zip(names, bounds[:-1], bounds[1:], strict=True)
        }


def _call(url: str, body: bytes) -> httpx.Response:
    return httpx.post(
        url + METHOD, content=body, headers={"content-type": "application/json"}, timeout=30
    )


def _ok_if(predicate: Callable[[Any], bool]) -> Check:
    def check(response: httpx.Response) -> str:
        outcome = outcome_of(response)
        if outcome == "ok" and not predicate(response.json().get("outputJson")):
            return "wrong-output"
        return outcome

    return check


ECHO_VALUE = {"data": "x" * 1000}
ECHO = Stream("echo", 50, lambda i: request_body("echo", ECHO_VALUE), _ok_if(ECHO_VALUE.__eq__))


# -- 1. storage --------------------------------------------------------------------------


def _kill(server: SeaweedS3) -> None:
    assert server.proc is not None
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=15)
    server.proc = None


def storage(work: Path, outage_s: float) -> dict[str, Any]:
    server = SeaweedS3(work / "s3")
    server.start()
    # A cache of its own: the soak has cached wordcount in work/cache already.
    bucket = S3Bucket(server, "reliability", work / "cache-storage")
    try:
        asyncio.run(bucket.create())
        for name, abi in (("echo", "raw"), ("hello", "wasi-stdio"), ("wordcount", "raw")):
            asyncio.run(bucket.publish(name, "1.0.0", example_module(name), abi=abi, promote=True))
        with serve(work, "faults-storage", **bucket.env()) as service:
            for name in ("echo", "hello"):  # cached before the outage; wordcount is not
                assert _call(service.url, request_body(name, {})).status_code == 200
            hello = Stream(
                "hello",
                20,
                lambda i: request_body("hello", {"name": f"n{i}"}),
                _ok_if(lambda out: isinstance(out, dict) and "greeting" in out),
            )
            uncached = Stream(
                "wordcount",
                10,
                lambda i: request_body("wordcount", {"text": "a b c"}),
                _ok_if(lambda out: isinstance(out, dict) and out.get("words") == 3),
            )
            with Traffic(service.url, [ECHO, hello]) as traffic:
                time.sleep(3)
                traffic.mark("s3_killed")
                _kill(server)
                time.sleep(1)
                probe = Traffic(service.url, [uncached])  # first asked for during the outage
                with probe:
                    time.sleep(outage_s)
                    traffic.mark("s3_restarting")
                    probe.mark("s3_restarting")
                    server.start()
                    traffic.mark("s3_up")
                    probe.mark("s3_up")
                    time.sleep(6)
            ready = httpx.get(service.url + "/readyz", timeout=5).status_code
        marks = ["s3_killed", "s3_restarting", "s3_up"]
        return {
            "outage_s": outage_s,
            "s3_restart_s": round(traffic.marks["s3_up"] - traffic.marks["s3_restarting"], 2),
            "echo_cached": traffic.phases("echo", marks),
            "hello_cached": traffic.phases("hello", marks),
            "wordcount_uncached": probe.phases("wordcount", ["s3_restarting", "s3_up"]),
            "wordcount_recovery_s_after_s3_up": probe.recovery_s("wordcount", "s3_up"),
            "readyz_after": ready,
        }
    finally:
        server.stop()


# -- 2. host-call upstream ---------------------------------------------------------------


class FaultyUpstream:
    """A raw HTTP/1.1 server on loopback whose ``mode`` picks how it answers.

    ``ok`` answers a JSON node; ``hang`` reads the request and never answers;
    ``reset`` closes the connection with a TCP RST; ``garbage`` writes bytes
    that are not HTTP and closes.
    """

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: Counter[str] = Counter()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            while not self._stop.is_set():
                request = self._read_request(conn)
                if request is None:
                    return
                mode = self.mode
                self.requests[mode] += 1
                if mode == "hang":
                    self._stop.wait(30)
                    return
                if mode == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if mode == "garbage":
                    conn.sendall(b"\x00\xffNOT HTTP AT ALL\r\n\r\n" + os.urandom(512))
                    return
                node = re.search(rb'"id"\s*:\s*"([^"]*)"', request)
                body = json.dumps({"id": node.group(1).decode() if node else None}).encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(body)}\r\n\r\n".encode()
                    + body
                )

    @staticmethod
    def _read_request(conn: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return None
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length:\s*(\d+)", head)
        need = int(length.group(1)) if length else 0
        while len(body) < need:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            body += chunk
        return body

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


def _enrich_outcome(response: httpx.Response) -> str:
    """``ok`` when the node came back; else the host-call error kind the guest was given."""
    outcome = outcome_of(response)
    if outcome != "ok":
        return outcome
    enriched = (response.json().get("outputJson") or {}).get("enriched") or {}
    if enriched.get("status") == 200 and isinstance(enriched.get("body"), dict):
        return "ok"
    error = enriched.get("error")
    kind = error.get("kind") if isinstance(error, dict) else None
    return f"guest-saw-{kind or json.dumps(enriched)[:60]}"


def upstream(work: Path, fault_s: float) -> dict[str, Any]:
    faulty = FaultyUpstream()
    env = {
        "EXTENSIONS_RUNTIME_HOSTCALL_SERVICES": json.dumps({"graph": faulty.url}),
        "EXTENSIONS_RUNTIME_EXTENSIONS_DIR": str(work / "extensions"),
    }
    enrich = Stream(
        "enrich", 10, lambda i: request_body("enrich", {"id": f"n{i}"}), _enrich_outcome
    )
    report: dict[str, Any] = {"fault_s": fault_s}
    try:
        with (
            serve(work, "faults-upstream", **env) as service,
            Traffic(service.url, [ECHO, enrich]) as traffic,
        ):
            time.sleep(3)
            marks: list[str] = []
            for mode in ("hang", "reset", "garbage"):
                traffic.mark(mode)
                faulty.mode = mode
                time.sleep(fault_s)
                traffic.mark(f"{mode}_over")
                faulty.mode = "ok"
                traffic.settle("enrich", f"{mode}_over", timeout=30)
                marks += [mode, f"{mode}_over"]
            threads = proc_stats(service.pid)["threads"]
        for mode in ("hang", "reset", "garbage"):
            report[mode] = {
                "enrich_during": traffic.window("enrich", mode, f"{mode}_over"),
                "echo_during": traffic.window("echo", mode, f"{mode}_over"),
                "enrich_after": traffic.window("enrich", f"{mode}_over", _next(mode)),
                "enrich_recovery_s": traffic.recovery_s("enrich", f"{mode}_over", _next(mode)),
            }
        report["echo_before"] = traffic.window("echo", None, "hang")
        report["enrich_before"] = traffic.window("enrich", None, "hang")
        report["upstream_requests_by_mode"] = dict(faulty.requests)
        report["server_threads_at_end"] = threads
    finally:
        faulty.close()
    return report


def _next(mode: str) -> str | None:
    order = ["hang", "reset", "garbage"]
    return order[order.index(mode) + 1] if mode != order[-1] else None


# -- 3. webhook flood --------------------------------------------------------------------


def _event(extension_id: str, n: int) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"flood-{n}",
            "source": "reliability/flood",
            "type": EVENT_TYPE,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "data": {"extension_id": extension_id},
        }
    ).encode()


async def _flood(url: str, count: int, in_flight: int) -> dict[str, Counter[str]]:
    """``count`` posts: 60% unsigned, 30% badly signed, 10% signed (for unchanged echo)."""
    seen: dict[str, Counter[str]] = {"unsigned": Counter(), "bad_signature": Counter()}
    seen["signed"] = Counter()
    queue = iter(range(count))
    secret = WEBHOOK_SECRET.encode()
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:

        async def worker() -> None:
            for n in queue:
                body = _event("echo", n)
                kind = ("unsigned", "bad_signature", "signed")[
                    0 if n % 10 < 6 else 1 if n % 10 < 9 else 2
                ]
                headers = {"content-type": "application/cloudevents+json"}
                if kind == "bad_signature":
                    headers[SIGNATURE_HEADER] = sign(body, b"not-the-secret")
                elif kind == "signed":
                    headers[SIGNATURE_HEADER] = sign(body, secret)
                try:
                    response = await http.post("/events/promotion", content=body, headers=headers)
                    seen[kind][str(response.status_code)] += 1
                except httpx.HTTPError as exc:
                    seen[kind][type(exc).__name__] += 1

        await asyncio.gather(*(worker() for _ in range(in_flight)))
    return seen


def webhook_flood(work: Path, count: int) -> dict[str, Any]:
    server = SeaweedS3(work / "s3-flood")
    server.start()
    bucket = S3Bucket(server, "flood", work / "cache-flood")
    try:
        asyncio.run(bucket.create())
        asyncio.run(bucket.publish("echo", "1.0.0", example_module("echo"), promote=True))
        asyncio.run(
            bucket.publish(
                "hello", "1.0.0", example_module("hello"), abi="wasi-stdio", promote=True
            )
        )
        asyncio.run(
            bucket.publish(
                "hello", "2.0.0", example_module("hello"), abi="wasi-stdio", promote=False
            )
        )
        with serve(work, "faults-flood", **bucket.env()) as service:
            assert _call(service.url, request_body("echo", {})).status_code == 200
            with Traffic(service.url, [ECHO]) as traffic:
                time.sleep(3)
                traffic.mark("flood")
                started = time.monotonic()
                seen = asyncio.run(_flood(service.url, count, 64))
                # One real promotion right after the flood: hello 1.0.0 -> 2.0.0.
                asyncio.run(_promote(bucket, "hello", "2.0.0"))
                body = _event("hello", -1)
                promoted = httpx.post(
                    service.url + "/events/promotion",
                    content=body,
                    headers={
                        "content-type": "application/cloudevents+json",
                        SIGNATURE_HEADER: sign(body, WEBHOOK_SECRET.encode()),
                    },
                    timeout=30,
                )
                flood_s = time.monotonic() - started
                traffic.mark("flood_over")
                time.sleep(3)
            served = _call(service.url, request_body("hello", {"name": "x"})).json()
        return {
            "events": count,
            "in_flight": 64,
            "seconds": round(flood_s, 2),
            "events_per_s": round(count / flood_s, 1),
            "answers": {kind: dict(counter) for kind, counter in seen.items()},
            "promotion_after_flood": promoted.status_code,
            "hello_version_served_after": served.get("resolvedVersion"),
            "echo": traffic.phases("echo", ["flood", "flood_over"]),
        }
    finally:
        server.stop()


async def _promote(bucket: S3Bucket, extension_id: str, version: str) -> None:
    await bucket.put(f"{extension_id}/promoted.json", json.dumps({"version": version}).encode())


# -- 4. policy file ----------------------------------------------------------------------

_POLICY = (ROOT / "config" / "risk-tiers.yaml").read_text()
_CAPPED = _POLICY.replace(
    "      timeout_ms: 1000\n", "      timeout_ms: 1000\n      fuel: 1000000\n", 1
)
_BROKEN = {"invalid_yaml": "tiers: [unclosed\n  - {", "binary": "\x00\xff\xfe junk \x01" * 8}


def policy(work: Path) -> dict[str, Any]:
    assert _CAPPED != _POLICY, "the pure tier of config/risk-tiers.yaml changed shape"
    (work / "risk-tiers.yaml").write_text(_CAPPED)
    spin = Stream(
        "spin",
        10,
        # ~26 M fuel: FUEL_EXHAUSTED while the capped policy is in force, fine without it.
        lambda i: request_body("spin", {"iterations": 1_000_000}),
    )
    env = {
        "EXTENSIONS_RUNTIME_EXTENSIONS_DIR": str(work / "extensions"),
        # The breaker would open on the capped spin's FUEL_EXHAUSTED and answer
        # UNAVAILABLE, hiding which policy is in force: this scenario is about the file.
        "EXTENSIONS_RUNTIME_BREAKER_MIN_CALLS": "1000000000",
    }
    with (
        serve(work, "faults-policy", **env) as service,
        Traffic(service.url, [ECHO, spin]) as traffic,
    ):
        time.sleep(3)
        for name, text in _BROKEN.items():
            traffic.mark(name)
            (work / "risk-tiers.yaml").write_text(text)
            time.sleep(4)
        failures = metric(
            service.url, "extensions_runtime_config_reload_failures_total", 'file="policy"'
        )
        traffic.mark("good_edit")
        (work / "risk-tiers.yaml").write_text(_POLICY)  # the fuel cap lifted
        time.sleep(4)
    logged = service.log.read_text(errors="replace").count("policy.reload_failed")
    return {
        # FUEL_EXHAUSTED throughout the broken files: the capped policy stayed in force.
        "spin": traffic.phases("spin", [*_BROKEN, "good_edit"]),
        "good_edit_applied_after_s": traffic.recovery_s("spin", "good_edit"),
        "echo_throughout": traffic.window("echo", None, None),
        "reload_failures_metric": failures,
        "reload_failed_log_lines": logged,
    }
