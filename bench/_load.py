"""Load generator, run as its own process so client and server never share a GIL.

    .venv/bin/python bench/_load.py --url http://127.0.0.1:8080 --protocol grpc \
        --workload echo --levels 1,8,32,128

Level 1 is the sequential latency run (``--requests`` calls, one after the
other); higher levels keep that many calls in flight for ``--duration``
seconds (at most ``--max-requests`` calls). Prints one JSON object:
``{"levels": {"1": {p50_us, p95_us, p99_us, mean_us, rps, errors, ...}, ...}}``.
With ``--concurrency N`` (one level) it prints that level's object alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from ameide_extensions_client.gen.ameide.extensions.v1.runtime_connect import (
    WasmExtensionRuntimeClient,
)

METHOD = "/ameide.extensions.v1.WasmExtensionRuntime/InvokeExtension"
INPUTS: dict[str, Any] = {
    "echo": {"data": "x" * 1010},  # 1 KiB of JSON: {"data": "xxx..."}
    "hello": {"name": "Ada"},
    "spin": {"iterations": 1000000},  # ~2 ms of guest compute
    "hello-py": {"name": "Ada"},
    "hello-js": {"name": "Ada"},
}
EXPECTED: dict[str, Callable[[Any], bool]] = {
    "echo": lambda out: out == INPUTS["echo"],
    "hello": lambda out: out == {"greeting": "Hello, Ada!"},
    "spin": lambda out: isinstance(out, dict) and "result" in out,
    "hello-py": lambda out: out == {"greeting": "Hello, Ada!"},
    "hello-js": lambda out: out == {"greeting": "Hello, Ada!"},
}

Call = Callable[[], Awaitable[Any]]


def body(workload: str, extension: str | None = None) -> dict[str, Any]:
    """The Connect JSON request for ``workload`` (``extension`` overrides the id)."""
    return {
        "context": {"tenantId": "bench", "organizationId": "bench", "userId": "bench"},
        "extensionId": extension or workload,
        "inputJson": INPUTS[workload],
    }


async def _drive(
    call: Call, concurrency: int, requests: int, duration: float
) -> tuple[list[float], int, float]:
    """``requests`` calls with ``concurrency`` in flight, stopping after ``duration`` s."""
    latencies: list[float] = []
    errors = 0
    remaining = requests
    stop_at = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            try:
                await call()
            except Exception:
                errors += 1
            else:
                latencies.append((time.perf_counter() - started) * 1e6)
            if started > stop_at:
                remaining = 0

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - started


def _summary(latencies: list[float], errors: int, elapsed: float) -> dict[str, Any]:
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0

    return {
        "p50_us": round(pct(0.50), 1),
        "p95_us": round(pct(0.95), 1),
        "p99_us": round(pct(0.99), 1),
        "mean_us": round(statistics.fmean(latencies), 1) if latencies else 0.0,
        "rps": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        "ok": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 3),
    }


class _Clients:
    """One protocol's client(s); several connections so SO_REUSEPORT can spread them."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.headers = {"authorization": f"Bearer {args.token}"} if args.token else {}
        self.json = body(args.workload, args.extension)
        self.request = runtime_pb.InvokeExtensionRequest.from_json(json.dumps(self.json))
        self._closers: list[Callable[[], Any]] = []

    def make(self, connections: int) -> tuple[Call, Callable[[], Awaitable[Any]]]:
        """A call that returns the decoded output, and one that checks nothing."""
        protocol = self.args.protocol
        if protocol == "connect-json":
            return self._connect_json(connections)
        if protocol == "grpc":
            return self._grpc(connections)
        return self._connectrpc(connections)

    def _connect_json(self, connections: int) -> tuple[Call, Call]:
        client = httpx.AsyncClient(
            base_url=self.args.url,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            headers={"content-type": "application/json", **self.headers},
            timeout=60,
        )
        self._closers.append(client.aclose)
        payload = json.dumps(self.json).encode()

        async def call() -> Any:
            response = await client.post(METHOD, content=payload)
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
            return response

        async def output() -> Any:
            return (await call()).json().get("outputJson")

        return call, output

    def _grpc(self, connections: int) -> tuple[Call, Call]:
        target = self.args.url.removeprefix("http://")
        # A local subchannel pool per channel: otherwise grpcio shares one
        # connection between channels to the same target.
        options = [("grpc.use_local_subchannel_pool", 1)]
        stubs = []
        for _ in range(max(1, connections)):
            channel = grpc.aio.insecure_channel(target, options=options)
            self._closers.append(channel.close)
            stubs.append(
                channel.unary_unary(
                    METHOD,
                    request_serializer=lambda m: m.to_binary(),
                    response_deserializer=runtime_pb.InvokeExtensionResponse.from_binary,
                )
            )
        metadata = tuple(self.headers.items())
        turn = 0

        async def call() -> Any:
            nonlocal turn
            turn += 1
            stub = stubs[turn % len(stubs)]
            return await stub(self.request, timeout=60, metadata=metadata)

        async def output() -> Any:
            return _proto_output(await call())

        return call, output

    def _connectrpc(self, connections: int) -> tuple[Call, Call]:
        del connections  # pyqwest pools connections itself
        client = WasmExtensionRuntimeClient(self.args.url)
        self._closers.append(client.close)

        async def call() -> Any:
            return await client.invoke_extension(self.request, headers=self.headers)

        async def output() -> Any:
            return _proto_output(await call())

        return call, output

    async def close(self) -> None:
        for closer in self._closers:
            result = closer()
            if asyncio.iscoroutine(result):
                await result


def _proto_output(response: runtime_pb.InvokeExtensionResponse) -> Any:
    return json.loads(response.to_json()).get("outputJson")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    levels = [int(x) for x in str(args.levels).split(",")]
    clients = _Clients(args)
    results: dict[str, Any] = {}
    try:
        for level in levels:
            # HTTP/1.1 has one call per connection; HTTP/2 multiplexes on a few.
            http1 = args.protocol == "connect-json"
            call, output = clients.make(level if http1 else min(level, args.channels))
            out = await output()
            if not args.any_output and not EXPECTED[args.workload](out):
                raise SystemExit(f"unexpected output for {args.workload}: {str(out)[:200]}")
            await _drive(call, level, max(args.warmup, 2 * level), 30.0)
            if level == 1:
                measured = await _drive(call, 1, args.requests, args.duration * 4)
            else:
                measured = await _drive(call, level, args.max_requests, args.duration)
            results[str(level)] = _summary(*measured)
    finally:
        await clients.close()
    return {"levels": results}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--protocol", choices=["connect-json", "grpc", "connectrpc"], required=True)
    parser.add_argument("--workload", choices=sorted(INPUTS), default="echo")
    parser.add_argument("--extension", default=None, help="extension id (default: the workload)")
    parser.add_argument("--levels", default="1", help="in-flight levels, e.g. 1,8,32,128")
    parser.add_argument("--concurrency", type=int, default=None, help="one level; flat output")
    parser.add_argument("--requests", type=int, default=500, help="sequential calls at level 1")
    parser.add_argument("--max-requests", type=int, default=4000, help="cap per loaded level")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per loaded level")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--channels", type=int, default=4, help="gRPC channels when loaded")
    parser.add_argument("--token", default=None, help="bearer token for the caller")
    parser.add_argument("--any-output", action="store_true", help="do not check the output")
    return parser


def main() -> None:
    args = _parser().parse_args()
    if args.concurrency is not None:
        args.levels = str(args.concurrency)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop comes with pyvoy
        runner = asyncio.run
    result = runner(main_async(args))
    if args.concurrency is not None:
        result = result["levels"][str(args.concurrency)]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
