"""What the reliability runs share: the hostile guests, the service under test, calls and figures.

Used by ``bench/reliability.py`` (noisy neighbour and the entry point),
``bench/_soak.py`` and ``bench/_faults.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests._hostcall_keys import new_key, write_keys  # noqa: E402
from tests._servers import cli_server  # noqa: E402
from tests._tokens import ISSUER, SECRET, caller_token  # noqa: E402
from tests.integration._storage import WEBHOOK_SECRET  # noqa: E402
from tests.sandbox import _modules  # noqa: E402

RESULTS = ROOT / "bench" / "results"
EXAMPLES = ROOT / "examples" / "extensions"
METHOD = "/ameide.extensions.v1.WasmExtensionRuntime/InvokeExtension"


def log(message: str) -> None:
    sys.stderr.write(f"[reliability {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# -- hostile guests (raw ABI; the sandbox tests' own modules) ---------------------------

HOSTILE = {
    # Never returns: declares fuel for ~10 s of it, so the deadline (1 s, the pure
    # tier's ceiling) stops it, as before the default fuel (~100 ms of it) was calibrated.
    "loop": _modules.INFINITE_LOOP,
    # Grows 1 MiB at a time until refused, then traps like an allocator giving up.
    "bomb": _modules.GROW_BOMB,
    # 50,000 log lines of 64 bytes (3.2 MB against a 64 KiB budget), then "ok".
    "flood": _modules.log_flood(50_000),
}


HOSTILE_LIMITS: dict[str, dict[str, int]] = {"loop": {"fuel": 10_000_000_000}}


def publish_local(
    root: Path,
    extension_id: str,
    wasm: bytes,
    abi: str = "raw",
    limits: dict[str, int] | None = None,
    *,
    number: str = "1.0.0",
    promote: bool = True,
) -> None:
    version = root / extension_id / number
    version.mkdir(parents=True, exist_ok=True)
    (version / "module.wasm").write_bytes(wasm)
    definition: dict[str, object] = {
        "id": extension_id,
        "version": number,
        "abi": abi,
        "risk_tier": "pure",
        "wasm_blob_ref": {"key": f"{extension_id}/{number}/module.wasm"},
        "sha256": hashlib.sha256(wasm).hexdigest(),
    }
    if limits:
        definition["limits"] = limits
    (version / "extension.json").write_text(json.dumps(definition))
    if promote:
        (root / extension_id / "promoted.json").write_text(json.dumps({"version": number}))


def extensions_dir(work: Path) -> Path:
    """The examples plus the hostile modules, in a directory of this run's own."""
    root = work / "extensions"
    shutil.copytree(EXAMPLES, root)
    for name, wasm in HOSTILE.items():
        publish_local(root, name, wasm, limits=HOSTILE_LIMITS.get(name))
    return root


# -- the service -------------------------------------------------------------------------


@dataclass
class Service:
    url: str
    pid: int
    log: Path
    work: Path
    policy: Path


def service_env(work: Path, **extra: str) -> dict[str, str]:
    (work / "tmp").mkdir(exist_ok=True)
    policy = work / "risk-tiers.yaml"
    if not policy.exists():
        shutil.copy(ROOT / "config" / "risk-tiers.yaml", policy)
    keys = work / "hostcall-keys.json"
    if not keys.exists():  # signed as in production: an Ed25519 key from a mounted file
        write_keys(keys, (new_key(), "reliability", "current"))
    env = {
        "EXTENSIONS_RUNTIME_AUTH_ENABLED": "false",
        "EXTENSIONS_RUNTIME_LOG_FORMAT": "json",
        "EXTENSIONS_RUNTIME_MODULE_CACHE_DIR": str(work / "cache"),
        "EXTENSIONS_RUNTIME_POLICY_FILE": str(policy),
        "EXTENSIONS_RUNTIME_PROMOTION_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "EXTENSIONS_RUNTIME_HOSTCALL_SIGNING_KEYS_FILE": str(keys),
        "EXTENSIONS_RUNTIME_CATALOG_POLL_INTERVAL_S": "0",
        "EXTENSIONS_RUNTIME_TRACING_ENABLED": "false",
        # The server's own temp directory: anything it leaves there is counted.
        "TMPDIR": str(work / "tmp"),
    }
    env.update(extra)
    return env


# Caller authentication as in production (HS256 here, so the harness can mint tokens):
# the rate limit and the token are checked from headers, before the body is read.
AUTH_ENV = {
    "EXTENSIONS_RUNTIME_AUTH_ENABLED": "true",
    "EXTENSIONS_RUNTIME_AUTH_HS256_SECRET": SECRET,
    "EXTENSIONS_RUNTIME_AUTH_ISSUER": ISSUER,
}


def auth_headers(tenant: str) -> dict[str, str]:
    """A bearer token for ``tenant`` (for a service started with ``AUTH_ENV``)."""
    return {"authorization": f"Bearer {caller_token(tenant, f'org-{tenant}', 'u')}"}


@contextlib.contextmanager
def serve(work: Path, name: str, **env: str) -> Iterator[Service]:
    logfile = work / f"{name}.log"
    with cli_server("pyvoy", env=service_env(work, **env), dev=False, log_path=logfile) as url:
        pid = int(httpx.get(url + "/readyz", timeout=5).json()["pid"])
        log(f"{name}: serving on {url} (pid {pid})")
        yield Service(url=url, pid=pid, log=logfile, work=work, policy=work / "risk-tiers.yaml")


def proc_stats(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))  # type: ignore[union-attr]
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
    return {
        "rss_kib": rss_kb,
        "open_fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": threads,
    }


def metric(url: str, name: str, labels: str = "") -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" (\S+)$"
    match = re.search("^" + pattern, text, re.M)
    return float(match.group(1)) if match else float("nan")


def _descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in found]
        found.update(children)
        frontier.extend(children)
    return found


def _our_jiffies() -> int:
    total = 0
    for pid in _descendants(os.getpid()):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total


def _machine_jiffies() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values[:8]) - idle, sum(values[:8])


class CpuMeter:
    """Cores used during a phase: by this benchmark's processes and by everything else.

    The machine is shared; a phase measured while other work ran says so.
    """

    def __enter__(self) -> CpuMeter:
        self.started = time.monotonic()
        self.ours = _our_jiffies()
        self.busy, _ = _machine_jiffies()
        return self

    def __exit__(self, *_exc: object) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        elapsed = max(1e-6, time.monotonic() - self.started)
        ours = (_our_jiffies() - self.ours) / tick / elapsed
        busy = (_machine_jiffies()[0] - self.busy) / tick / elapsed
        self.result = {
            "cores_ours": round(ours, 2),
            "cores_others": round(max(0.0, busy - ours), 2),
        }


# -- calls -------------------------------------------------------------------------------


def request_body(extension: str, value: Any, tenant: str = "good", **more: Any) -> bytes:
    body = {
        "context": {"tenantId": tenant, "organizationId": f"org-{tenant}", "userId": "u"},
        "extensionId": extension,
        "inputJson": value,
        **more,
    }
    return json.dumps(body).encode()


def outcome_of(response: httpx.Response) -> str:
    """``ok`` or the error kind (``FUEL_EXHAUSTED`` ...) or ``http-<status>``."""
    if response.status_code == 200:
        return "ok"
    try:
        error = response.json()
        kind = error["details"][0]["debug"]["kind"]
        return str(kind).removeprefix("ERROR_KIND_")
    except (ValueError, KeyError, IndexError, TypeError):
        return f"http-{response.status_code}"


@dataclass
class Calls:
    """Latencies and outcomes of a batch of calls."""

    latencies_ms: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.perf_counter)
    ended: float = 0.0

    def add(self, latency_s: float, outcome: str) -> None:
        self.latencies_ms.append(latency_s * 1000)
        self.outcomes[outcome] += 1

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)

        def pct(p: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2) if ordered else 0

        elapsed = (self.ended or time.perf_counter()) - self.started
        return {
            "calls": len(ordered),
            "p50_ms": pct(0.50),
            "p95_ms": pct(0.95),
            "p99_ms": pct(0.99),
            "max_ms": round(ordered[-1], 2) if ordered else 0,
            "rps": round(len(ordered) / elapsed, 1) if elapsed else 0,
            "outcomes": dict(self.outcomes),
        }


async def timed(
    client: httpx.AsyncClient, body: bytes, calls: Calls, headers: dict[str, str] | None = None
) -> str:
    started = time.perf_counter()
    try:
        response = await client.post(METHOD, content=body, headers=headers)
        outcome = outcome_of(response)
    except httpx.HTTPError as exc:
        outcome = f"client-{type(exc).__name__}"
    calls.add(time.perf_counter() - started, outcome)
    return outcome


def client(
    url: str, connections: int = 64, timeout: float = 30, headers: dict[str, str] | None = None
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        headers={"content-type": "application/json", **(headers or {})},
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=timeout,
    )


async def open_loop(
    url: str,
    rate: float,
    duration: float,
    make: Callable[[int], bytes],
    headers: dict[str, str] | None = None,
) -> Calls:
    """``rate`` calls a second for ``duration`` seconds, each sent on schedule."""
    calls = Calls()
    async with client(url, headers=headers) as http:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for i in range(int(rate * duration)):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(timed(http, make(i), calls)))
        await asyncio.gather(*tasks)
    calls.ended = time.perf_counter()
    return calls


async def closed_loop(
    url: str,
    in_flight: int,
    make: Callable[[int], bytes],
    *,
    count: int,
    duration: float,
    calls: Calls | None = None,
    on_call: Callable[[int], None] | None = None,
    min_cycle_s: float = 0.0,
    headers: dict[str, str] | None = None,
) -> Calls:
    """``count`` calls, ``in_flight`` at a time, stopping after ``duration`` seconds;
    each worker starts a call at most every ``min_cycle_s``."""
    calls = calls or Calls()
    stop_at = time.perf_counter() + duration
    issued = 0
    async with client(url, connections=in_flight, headers=headers) as http:

        async def worker() -> None:
            nonlocal issued
            while issued < count and time.perf_counter() < stop_at:
                i = issued
                issued += 1
                began = time.perf_counter()
                await timed(http, make(i), calls)
                if on_call is not None:
                    on_call(i)
                rest = min_cycle_s - (time.perf_counter() - began)
                if rest > 0:
                    await asyncio.sleep(rest)

        await asyncio.gather(*(worker() for _ in range(in_flight)))
    calls.ended = time.perf_counter()
    return calls
