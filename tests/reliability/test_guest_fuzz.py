"""Mutated modules are refused or run within limits; the process never crashes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

from tests._servers import ROOT

ALLOWED_PREFIXES = (
    "compile:INVALID_MODULE",
    "compile:MEMORY_LIMIT",
    "wat:unassembled",
    "run:",
    "ran",
)
COUNT = 1500


def test_mutated_modules_never_crash_the_process() -> None:
    # A fresh seed each run widens the search; it is in every failure message.
    seed = int(os.environ.get("WASM_FUZZ_SEED", random.randrange(2**32)))
    result = subprocess.run(
        [sys.executable, "-m", "tests.reliability._mutate_wasm", str(COUNT), str(seed)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, (
        f"the process died ({result.returncode}) with WASM_FUZZ_SEED={seed}: "
        f"{result.stderr[-2000:]}"
    )
    kinds = json.loads(result.stdout.strip().splitlines()[-1])
    assert sum(kinds.values()) == COUNT
    unexpected = {k: v for k, v in kinds.items() if not k.startswith(ALLOWED_PREFIXES)}
    assert not unexpected, (seed, unexpected)
    assert kinds.get("compile:INVALID_MODULE", 0) > 0
    # Some mutants survive validation and must then obey the limits like any guest.
    assert kinds.get("ran", 0) + sum(v for k, v in kinds.items() if k.startswith("run:")) > 0
    assert "run:INTERNAL" not in kinds, (seed, kinds)
