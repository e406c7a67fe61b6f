"""A call whose module is in memory keeps its tenant's turn through the lookup:
lending it out would send the call to the back of the tenant's queue."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.invocation import ExecutionContext, Invocation
from app.runtime import Runtime
from app.settings import Settings
from tests._servers import ROOT


async def test_calls_of_a_tenant_finish_in_the_order_they_got_their_turns(
    tmp_path: Path,
) -> None:
    settings = Settings(
        auth_enabled=False,
        extensions_dir=ROOT / "examples" / "extensions",
        module_cache_dir=tmp_path / "cache",
        tenant_max_active=1,
        tenant_max_waiting=16,
    )
    async with Runtime(settings) as runtime:
        call = Invocation(ExecutionContext(tenant_id="t1"), "echo", "", b'{"n": 1}')
        await runtime.invoke(call)  # loads the module: now it is in memory
        hits = runtime.modules.stats.hits
        events: list[str] = []

        async def one(number: int) -> None:
            turn = await runtime.gate.enter("t1")
            try:
                while runtime.gate.waiting("t1") < 7 - number:  # the others queue first
                    await asyncio.sleep(0.001)
                events.append(f"start {number}")
                assert (await runtime.invoke(call)).output == b'{"n": 1}'
                events.append(f"end {number}")
            finally:
                turn.release()

        await asyncio.gather(*(one(number) for number in range(8)))
        # One call at a time, each to its end: none lent its turn to the next.
        assert events == [f"{what} {n}" for n in range(8) for what in ("start", "end")]
        assert runtime.modules.stats.hits == hits + 8
        assert runtime.gate.active("t1") == 0 and runtime.gate.waiting() == 0
