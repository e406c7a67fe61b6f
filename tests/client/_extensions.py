"""A temporary extensions directory: the examples plus modules that fail on purpose.

Everything is published the way Transformation does it (``app.catalog.publish``:
blob, definition, promoted pointer), so the running service reads them exactly
as it reads real extensions. Each error kind gets an extension of its own, so
no test's failures count against another's circuit breaker.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import wasmtime

from app.catalog import build_definition, publish
from app.settings import Settings
from tests._servers import ROOT

EXAMPLES = ROOT / "examples" / "extensions"

SUSPENDED_TENANT = "suspended-tenant"
KILL_SWITCHES = f"""\
disabled:
  - {{extension_id: retired, reason: "retired by the test"}}
  - {{tenant_id: {SUSPENDED_TENANT}, reason: "tenant suspended by the test"}}
"""

# Unbounded recursion: the wasm stack runs out long before fuel or time.
_DEEP = """
(module
  (memory (export "memory") 1)
  (func $alloc (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func $down (param $n i64) (result i64)
    (i64.add (call $down (i64.add (local.get $n) (i64.const 1))) (i64.const 1)))
  (func (export "handle") (param i32 i32) (result i64) (call $down (i64.const 0))))
"""

# Imports a function the runtime does not offer: refused before it runs.
_FORBIDDEN = """
(module
  (import "env" "launch_missiles" (func $nope))
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "handle") (param i32 i32) (result i64) (call $nope) (i64.const 0)))
"""


# A module of its own for "tampered": modules are cached by digest, so one whose
# digest another extension shares could be served from the cache, never re-read.
_TAMPERED = """
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "tampered-original")
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "handle") (param i32 i32) (result i64) (i64.const 17)))
"""


def _module(extension_id: str) -> bytes:
    return (EXAMPLES / extension_id / "1.0.0" / "module.wasm").read_bytes()


def build(root: Path) -> Path:
    """Copy the examples into ``root/extensions`` and publish the failing ones next to them."""
    extensions = root / "extensions"
    shutil.copytree(EXAMPLES, extensions)
    settings = Settings(extensions_dir=extensions)
    spin, echo, hello = _module("spin"), _module("echo"), _module("hello")
    deep = bytes(wasmtime.wat2wasm(_DEEP))
    forbidden = bytes(wasmtime.wat2wasm(_FORBIDDEN))
    tampered = bytes(wasmtime.wat2wasm(_TAMPERED))
    published: list[tuple[str, bytes, str, dict[str, Any]]] = [
        ("lowfuel", spin, "raw", {"fuel": 1_000_000}),
        # Fuel for seconds of spin, so its 150 ms deadline is what stops it.
        ("slow", spin, "raw", {"timeout_ms": 150, "fuel": 20_000_000_000}),
        ("tinyout", echo, "raw", {"output_bytes": 16}),
        ("tinymem", echo, "raw", {"memory_bytes": 32 * 1024}),
        ("deep", deep, "raw", {}),
        ("forbidden", forbidden, "raw", {}),
        ("tampered", tampered, "raw", {}),
        ("retired", echo, "raw", {}),
        ("breaky", hello, "wasi-stdio", {}),
    ]
    for extension_id, wasm, abi, limits in published:
        definition = build_definition(
            wasm,
            extension_id=extension_id,
            version="1.0.0",
            abi=abi,
            tier="pure",
            limits=limits,
            host_calls=[],
            config={},
        )
        asyncio.run(publish(settings, definition, wasm, promote=True))
    # The stored bytes no longer match the recorded digest.
    (extensions / "tampered" / "1.0.0" / "module.wasm").write_bytes(spin)
    (root / "kill-switches.yaml").write_text(KILL_SWITCHES)
    return extensions


def server_env(root: Path) -> dict[str, str]:
    """Environment for ``serve --dev`` on the directory :func:`build` made."""
    return {
        "EXTENSIONS_RUNTIME_EXTENSIONS_DIR": str(root / "extensions"),
        "EXTENSIONS_RUNTIME_KILL_SWITCHES_FILE": str(root / "kill-switches.yaml"),
        # Separate from the shared dev cache: the tampered module must miss it.
        "EXTENSIONS_RUNTIME_MODULE_CACHE_DIR": str(root / "module-cache"),
    }
