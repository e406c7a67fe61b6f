"""A log flood's paced host-function calls show on /metrics; echo keeps answering beside it."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from app.errors import ErrorKind, InvocationFailure
from app.invocation import ExecutionContext, Invocation
from app.runtime import Runtime
from app.settings import Settings
from tests._servers import ROOT
from tests.sandbox import _modules

METRIC = "extensions_runtime_host_paced_calls_total"


def _publish(root: Path, extension_id: str, wasm: bytes) -> None:
    version = root / extension_id / "1"
    version.mkdir(parents=True)
    (version / "module.wasm").write_bytes(wasm)
    definition = {
        "id": extension_id,
        "version": "1",
        "abi": "raw",
        "wasm_blob_ref": {"key": f"{extension_id}/1/module.wasm"},
        "sha256": hashlib.sha256(wasm).hexdigest(),
    }
    (version / "extension.json").write_text(json.dumps(definition))
    (root / extension_id / "promoted.json").write_text('{"version": "1"}')


def _paced(runtime: Runtime) -> float:
    for line in generate_latest(runtime.registry).decode().splitlines():
        if line.startswith(METRIC + " "):
            return float(line.split()[1])
    raise AssertionError(f"{METRIC} is not exported")


async def test_flood_is_paced_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "extensions"
    _publish(root, "flood", _modules.log_flood(1_000_000))
    _publish(root, "echo", _modules.ECHO)
    runtime = Runtime(
        Settings(
            auth_enabled=False,
            extensions_dir=root,
            policy_file=ROOT / "config" / "risk-tiers.yaml",
            breaker_min_calls=10**9,
            host_paced_calls_per_s=100,
        )
    )
    await runtime.start()
    try:
        assert _paced(runtime) == 0
        flood = Invocation(ExecutionContext("abuser"), "flood", "", b"", include_logs=True)
        task = asyncio.ensure_future(runtime.invoke(flood))
        echoes = [
            await runtime.invoke(Invocation(ExecutionContext("good"), "echo", "", b"hi"))
            for _ in range(20)
        ]
        assert [e.output for e in echoes] == [b"hi"] * 20
        with pytest.raises(InvocationFailure) as info:
            await task
        assert info.value.kind is ErrorKind.TIMEOUT  # a million lines never fit in 1 s
        # At 100 paced calls a second for at most its 1 s deadline (plus the
        # inline first try): counted, and bounded by the schedule.
        assert 0 < _paced(runtime) <= 100 * 2 + 2
    finally:
        await runtime.close()
