"""A caller that leaves mid-call is counted as ``cancelled``, not as a runtime fault."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from prometheus_client import generate_latest

from app.invocation import ExecutionContext, Invocation
from app.runtime import Runtime
from app.settings import Settings
from tests._servers import ROOT
from tests.runtime.test_pacing_metric import _publish
from tests.sandbox import _modules


def _outcomes(runtime: Runtime) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in generate_latest(runtime.registry).decode().splitlines():
        if line.startswith("extensions_runtime_invocations_total{") and 'extension="loop"' in line:
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            found[outcome] = float(line.rsplit(" ", 1)[1])
    return found


async def test_a_caller_that_leaves_is_counted_as_cancelled(tmp_path: Path) -> None:
    root = tmp_path / "extensions"
    _publish(root, "loop", _modules.INFINITE_LOOP)
    async with Runtime(
        Settings(
            auth_enabled=False,
            extensions_dir=root,
            policy_file=ROOT / "config" / "risk-tiers.yaml",
            default_fuel=10**15,
            max_fuel=10**15,
        )
    ) as runtime:
        call = asyncio.ensure_future(
            runtime.invoke(
                Invocation(
                    extension_id="loop",
                    version=None,
                    input=b"{}",
                    context=ExecutionContext(tenant_id="t1", request_id="r1"),
                )
            )
        )
        # Leave while the guest still runs (its deadline is a second away).
        while runtime.executor.in_flight == 0 and not call.done():
            await asyncio.sleep(0.01)
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call
        assert _outcomes(runtime) == {"cancelled": 1.0}
