"""Run random mutations of real modules through compile and run (as a subprocess).

Prints one JSON summary. A crash of this process (abort, segfault) is exactly
what the calling test looks for, so it must not run inside pytest itself.

Seeds: the example extensions (echo: raw WAT; hello: wasi-libc C) and the
hostile sandbox test modules. Mutations: byte flips, inserted and deleted
runs, overlong or maximal LEB128 numbers written over the bytes (section and
vector sizes, memory limits, indices), and chunks duplicated elsewhere.
Byte mutants are mostly refused by validation, so a third of the runs mutate
the WAT source of the examples instead (every constant may become 0, -1, a
page boundary, a huge or a random value) and assemble it: valid modules with
wild pointers, lengths, loop counts and memory sizes, which then must run
within the limits.
"""

from __future__ import annotations

import collections
import json
import random
import re
import sys
import threading
import time
from pathlib import Path

import wasmtime

from app.errors import InvocationFailure
from app.invocation import ExecutionContext
from app.sandbox import DeclaredLimits, SandboxEngine, effective_limits, run
from app.settings import Settings
from tests.sandbox import _modules

ROOT = Path(__file__).resolve().parents[2]
_CONST = re.compile(r"\((i32|i64)\.const (-?(?:0x[0-9a-fA-F]+|\d+))\)")
_MEMORY = re.compile(r"\(memory \(export \"memory\"\) (\d+)\)")
_INTERESTING = (0, 1, -1, 7, 64, 4096, 65535, 65536, 65537, 2**31 - 1, -(2**31), 2**32 - 1)
_LEBS = (b"\xff\xff\xff\xff\x0f", b"\x80\x80\x80\x80\x80\x00", b"\xff" * 9 + b"\x01", b"\x00")


def _seeds() -> list[tuple[str, bytes]]:
    examples = ROOT / "examples" / "extensions"
    return [
        ("raw", (examples / "echo" / "1.0.0" / "module.wasm").read_bytes()),
        ("wasi-stdio", (examples / "hello" / "1.0.0" / "module.wasm").read_bytes()),
        ("raw", (examples / "wordcount" / "1.0.0" / "module.wasm").read_bytes()),
        ("raw", _modules.COUNTER),
        ("raw", _modules.GROW_BOMB),
        ("raw", _modules.RECURSION),
        ("raw", _modules.LOG_FLOOD),
        ("raw", _modules.HOST_CALL),
        ("wasi-stdio", _modules.CAT),
    ]


def _wat_sources() -> list[str]:
    return [
        (ROOT / "examples" / "src" / name / f"{name}.wat").read_text()
        for name in ("echo", "spin", "enrich")
    ]


def mutate_wat(rng: random.Random, text: str) -> bytes | None:
    """The module with some constants and its memory size replaced; None if it no longer
    assembles."""

    def constant(match: re.Match[str]) -> str:
        if rng.random() > 0.3:
            return match.group(0)
        value = rng.choice(_INTERESTING) if rng.random() < 0.7 else rng.randrange(-(2**31), 2**32)
        if match.group(1) == "i32":
            value = (value + 2**31) % 2**32 - 2**31
        return f"({match.group(1)}.const {value})"

    text = _CONST.sub(constant, text)
    if rng.random() < 0.2:
        text = _MEMORY.sub(f'(memory (export "memory") {rng.choice((0, 1, 2, 200, 5000))})', text)
    try:
        return bytes(wasmtime.wat2wasm(text))
    except wasmtime.WasmtimeError:
        return None


def mutate(rng: random.Random, data: bytearray) -> bytearray:
    for _ in range(rng.randint(1, 8)):
        op = rng.choice(("flip", "flip", "insert", "delete", "leb", "duplicate"))
        position = rng.randrange(8, len(data)) if len(data) > 8 else 8  # keep the header
        if op == "flip" and position < len(data):
            data[position] = rng.randrange(256)
        elif op == "insert":
            data[position:position] = rng.randbytes(rng.randint(1, 16))
        elif op == "delete":
            del data[position : position + rng.randint(1, 32)]
        elif op == "leb":
            leb = rng.choice(_LEBS)
            data[position : position + len(leb)] = leb
        elif op == "duplicate" and len(data) > 16:
            start = rng.randrange(8, len(data) - 1)
            chunk = data[start : start + rng.randint(1, 64)]
            data[position:position] = chunk
    return data


def main(count: int, seed: int) -> None:
    rng = random.Random(seed)
    settings = Settings(auth_enabled=False)
    limits = effective_limits(
        DeclaredLimits(fuel=5_000_000, memory_bytes=8 << 20, timeout_ms=200, log_bytes=4096),
        settings.limit_bounds,
        None,
    )
    seeds = _seeds()
    wat = _wat_sources()
    kinds: collections.Counter[str] = collections.Counter()
    with SandboxEngine(settings.engine_config) as engine:
        for i in range(count):
            if i % 3 == 2:
                abi, assembled = "raw", mutate_wat(rng, rng.choice(wat))
                if assembled is None:
                    kinds["wat:unassembled"] += 1
                    continue
                data = assembled
            else:
                abi, original = rng.choice(seeds)
                data = bytes(mutate(rng, bytearray(original)))
            try:
                compiled = engine.compile(data, abi)
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
