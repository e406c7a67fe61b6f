"""Run random mutations of real modules through compile and run (as a subprocess).

Prints one JSON summary. A crash of this process (abort, segfault) is exactly
what the calling test looks for, so it must not run inside pytest itself.
"""

from __future__ import annotations

import collections
import json
import random
import sys
import threading
import time
from pathlib import Path

from app.errors import InvocationFailure
from app.invocation import ExecutionContext
from app.sandbox import DeclaredLimits, SandboxEngine, effective_limits, run
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def main(count: int, seed: int) -> None:
    rng = random.Random(seed)
    settings = Settings(auth_enabled=False)
    limits = effective_limits(
        DeclaredLimits(fuel=5_000_000, memory_bytes=8 << 20, timeout_ms=200), settings, None
    )
    sources = {
        "raw": (ROOT / "examples/extensions/echo/1.0.0/module.wasm").read_bytes(),
        "wasi-stdio": (ROOT / "examples/extensions/hello/1.0.0/module.wasm").read_bytes(),
    }
    kinds: collections.Counter[str] = collections.Counter()
    with SandboxEngine(settings) as engine:
        for i in range(count):
            abi = "raw" if i % 2 else "wasi-stdio"
            data = bytearray(sources[abi])
            for _ in range(rng.randint(1, 8)):
                position = rng.randrange(8, len(data))  # keep the header sometimes valid
                data[position] = rng.randrange(256)
            try:
                compiled = engine.compile(bytes(data), abi)
            except InvocationFailure as failure:
                kinds[f"compile:{failure.kind.value}"] += 1
                continue
            try:
                run(
                    engine,
                    compiled,
                    b'{"name":"x"}',
                    limits,
                    context=ExecutionContext(),
                    deadline=time.monotonic() + 0.2,
                    include_logs=False,
                    cancel=threading.Event(),
                )
                kinds["ran"] += 1
            except InvocationFailure as failure:
                kinds[f"run:{failure.kind.value}"] += 1
    print(json.dumps(dict(kinds)))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
