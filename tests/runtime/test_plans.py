"""The settled limits of a version are reused between calls only while the version,
the policy and the degradations covering the call stay the same: a degradation,
its clearing and a policy reload each apply from the next call."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.controls import Degradation
from app.errors import ErrorKind, InvocationFailure
from app.invocation import ExecutionContext, Invocation, Outcome
from app.limits import DeclaredLimits
from app.runtime import Runtime
from app.settings import Settings
from tests._servers import ROOT

SPIN = b'{"iterations": 100000}'  # ~2.6 M fuel


async def _spin(runtime: Runtime) -> Outcome:
    return await runtime.invoke(Invocation(ExecutionContext(tenant_id="t1"), "spin", "", SPIN))


async def test_a_degradation_and_a_policy_reload_apply_from_the_next_call(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "tiers.yaml"
    policy.write_text((ROOT / "config" / "risk-tiers.yaml").read_text())
    settings = Settings(
        auth_enabled=False,
        extensions_dir=ROOT / "examples" / "extensions",
        module_cache_dir=tmp_path / "cache",
        policy_file=policy,
    )
    async with Runtime(settings) as runtime:
        assert (await _spin(runtime)).output.startswith(b'{"result"')
        assert (await _spin(runtime)).output.startswith(b'{"result"')  # the reused plan

        runtime.controls.degrade(
            Degradation(extension_id="spin", ceilings=DeclaredLimits(fuel=1000))
        )
        with pytest.raises(InvocationFailure) as lowered:
            await _spin(runtime)
        assert lowered.value.kind is ErrorKind.FUEL_EXHAUSTED
        runtime.controls.degrade(Degradation(extension_id="spin", ceilings=DeclaredLimits()))
        assert (await _spin(runtime)).output.startswith(b'{"result"')

        text = policy.read_text()
        marker = "  pure:\n    description: Pure functions of their input; no host calls.\n"
        marker += "    allow: []\n    ceilings:\n"
        assert marker in text
        policy.write_text(text.replace(marker, marker + "      fuel: 1000\n", 1))
        kinds = []
        for _ in range(100):  # the policy file is re-read at most once a second
            try:
                await _spin(runtime)
                kinds.append("ok")
            except InvocationFailure as failure:
                kinds.append(failure.kind.value)
                break
            await asyncio.sleep(0.05)
        assert kinds[-1] == "FUEL_EXHAUSTED", kinds
