"""The whole request path in one thread, for a profiler: the ASGI app driven directly.

    .venv/bin/python bench/profile_asgi.py --protocol grpc 2>/dev/null  # service and floor
    .venv/bin/py-spy record -r 400 -f raw -o /tmp/asgi.txt -- \\
        .venv/bin/python bench/profile_asgi.py --only service --rounds 20

Under Envoy, a profiler samples threads that are runnable but pre-empted by
Envoy's own threads on the same core, and charges that time to whatever line
was running (a system call, the response's ``send``): the profile shows where
the loop thread waited as much as where it worked. Here the app built by
``create_app`` (the service, and the protocol floor beside it) is called with
an ASGI scope, ``receive`` and ``send`` of our own, one call after another on
one event loop, in the production logging configuration (JSON at info). What
it prints is the Python CPU of a call, every layer from routing to the
response's last frame, with nothing else on the thread.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.asgi import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.telemetry import configure_logging  # noqa: E402
from bench._c_load import METHOD, PROTOCOLS, request_body  # noqa: E402

_CONTENT_TYPES = {
    "connect-json": [(b"content-type", b"application/json")],
    "connect-proto": [(b"content-type", b"application/proto")],
    "grpc": [(b"content-type", b"application/grpc"), (b"te", b"trailers")],
}


class _Call:
    """One request's ``receive`` and ``send``: the body once, then a wait, as uvicorn does."""

    def __init__(self, body: bytes) -> None:
        self._body: bytes | None = body
        self.status = 0
        self.trailers: list[tuple[bytes, bytes]] = []
        self.parts: list[bytes] = []

    async def receive(self) -> dict[str, Any]:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # cancelled when the app is done with the call
        raise AssertionError("unreachable")

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
        elif kind == "http.response.body":
            self.parts.append(message.get("body", b""))
        elif kind == "http.response.trailers":
            self.trailers = message.get("headers", [])


def _scope(protocol: str, body: bytes) -> dict[str, Any]:
    headers = [*_CONTENT_TYPES[protocol], (b"content-length", str(len(body)).encode())]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "2",
        "method": "POST",
        "scheme": "http",
        "path": METHOD,
        "raw_path": METHOD.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
        "extensions": {"http.response.trailers": {}},
    }


async def _one(app: Any, protocol: str, body: bytes) -> _Call:
    call = _Call(body)
    await app(_scope(protocol, body), call.receive, call.send)
    return call


def _check(call: _Call, protocol: str) -> None:
    """A wrong answer measured fast is no measurement."""
    if call.status != 200:
        raise SystemExit(f"{protocol}: HTTP {call.status}: {b''.join(call.parts)[:300]!r}")
    if protocol == "grpc" and (b"grpc-status", b"0") not in call.trailers:
        raise SystemExit(f"grpc: trailers {call.trailers}")


def _app(floor: bool) -> Any:
    settings = Settings(
        auth_enabled=False,
        extensions_dir=ROOT / "examples" / "extensions",
        policy_file=ROOT / "config" / "risk-tiers.yaml",
        catalog_poll_interval_s=30,
        rate_limit_per_s=0,
        debug_console=False,
        protocol_floor=floor,
        log_format="json",
        log_level="info",
    )
    return create_app(settings)


async def _measure(names: list[str], protocol: str, calls: int, rounds: int) -> dict[str, float]:
    """The fastest round of ``calls`` per app, rounds alternating between the apps.

    This host's speed drifts by tens of percent from minute to minute; the
    fastest of several short rounds, taken in turns, compares like with like.
    """
    body = request_body(protocol, "echo", {"data": "x" * 1010})
    apps = {name: _app(name == "floor") for name in names}
    best = dict.fromkeys(names, float("inf"))
    async with AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
            for _ in range(300):
                _check(await _one(app, protocol, body), protocol)
        for _ in range(rounds):
            for name, app in apps.items():
                cpu = time.thread_time()
                for _ in range(calls):
                    await _one(app, protocol, body)
                best[name] = min(best[name], (time.thread_time() - cpu) / calls * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=PROTOCOLS, default="grpc")
    parser.add_argument("--calls", type=int, default=1000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=("service", "floor"))
    args = parser.parse_args()
    configure_logging("info", "json")  # the lines go to stderr: send it to /dev/null
    names = [name for name in ("floor", "service") if args.only in (None, name)]
    best = asyncio.run(_measure(names, args.protocol, args.calls, args.rounds))
    figures = ", ".join(f"{name} {us:.1f}" for name, us in best.items())
    ratio = f"; service / floor {best['service'] / best['floor']:.2f}" if len(best) == 2 else ""
    print(f"{args.protocol}: µs of CPU per call, fastest of {args.rounds} rounds: {figures}{ratio}")


if __name__ == "__main__":
    main()
