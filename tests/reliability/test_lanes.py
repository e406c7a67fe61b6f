"""Good calls keep their latency while other tenants loop or wait on a hanging upstream.

In process (the event loop is this test's): short pure guests run inline,
looping guests in the long lane, host-calling guests in the io lane. With the
guests of one shared queue, echo waited seconds behind them (``make
reliability`` measured it); here no echo may wait for a thread anywhere near as long
as a loop or a hung host call holds one, while eight hung host calls and
four loops hold their lanes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.errors import ErrorKind, InvocationFailure
from app.invocation import ExecutionContext, Invocation
from app.runtime import Runtime
from app.settings import Settings
from tests._servers import ROOT
from tests.sandbox import _modules


@pytest.fixture
def hanging_upstream() -> Iterator[str]:
    """Accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def _publish_loop(root: Path) -> None:
    version = root / "loop" / "1"
    version.mkdir(parents=True)
    (version / "module.wasm").write_bytes(_modules.INFINITE_LOOP)
    (version / "extension.json").write_text(
        json.dumps(
            {
                "id": "loop",
                "version": "1",
                "abi": "raw",
                # Fuel for ~10 s of this loop: the deadline stops it, holding its
                # lane that long (the default fuel would end it after ~100 ms).
                "limits": {"timeout_ms": 1500, "fuel": 10_000_000_000},
                "wasm_blob_ref": {"key": "loop/1/module.wasm"},
                "sha256": hashlib.sha256(_modules.INFINITE_LOOP).hexdigest(),
            }
        )
    )
    (root / "loop" / "promoted.json").write_text('{"version": "1"}')


async def test_echo_stays_fast_beside_loops_and_hung_host_calls(
    tmp_path: Path, hanging_upstream: str
) -> None:
    root = tmp_path / "extensions"
    for name in ("echo", "enrich"):
        shutil.copytree(ROOT / "examples" / "extensions" / name, root / name)
    _publish_loop(root)
    runtime = Runtime(
        Settings(
            auth_enabled=False,
            extensions_dir=root,
            policy_file=ROOT / "config" / "risk-tiers.yaml",
            hostcall_services={"graph": hanging_upstream},
            dev=True,  # HS256 host-call tokens are dev-only
            hostcall_token_secret=SecretStr("lanes-test-secret-0123456789abcdef0123"),
            hostcall_timeout_ms=2_000,
        )
    )
    await runtime.start()

    def call(extension: str, data: bytes, tenant: str) -> Invocation:
        return Invocation(ExecutionContext(tenant_id=tenant), extension, "", data)

    try:
        await runtime.invoke(call("echo", b'{"warm": 1}', "good"))
        abusers = [
            # Eight tenants: one tenant gets at most half the io lane (executor.py).
            asyncio.ensure_future(runtime.invoke(call("enrich", b'{"id": "n"}', f"waiter-{i}")))
            for i in range(8)
        ] + [asyncio.ensure_future(runtime.invoke(call("loop", b"{}", "looper"))) for _ in range(4)]
        await asyncio.sleep(0.3)  # they hold their lanes now
        waited_us = []
        for i in range(20):
            outcome = await runtime.invoke(call("echo", json.dumps({"i": i}).encode(), "good"))
            waited_us.append(outcome.metrics.queue_us)
            assert json.loads(outcome.output) == {"i": i}
            await asyncio.sleep(0.02)
        # Behind a looping guest an echo would wait its 1.5 s deadline for the thread,
        # behind a hung host call 2 s: a lane of its own (or inline) waits for neither.
        # (Queue time, not wall time: a busy machine slows every call, not this.)
        assert max(waited_us) < 1_000_000, f"an echo waited {max(waited_us)} µs for a thread"
        results = await asyncio.gather(*abusers, return_exceptions=True)
    finally:
        await runtime.close()
    loops = results[8:]
    assert all(isinstance(r, InvocationFailure) and r.kind is ErrorKind.TIMEOUT for r in loops)
    # The hung host calls ended by their own timeout; the guest saw a typed error.
    for outcome in results[:8]:
        assert not isinstance(outcome, BaseException), outcome
        enriched = json.loads(outcome.output)["enriched"]
        assert enriched.get("error", {}).get("kind") == "timeout", enriched
