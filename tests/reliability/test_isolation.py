"""Tenant isolation: concurrent callers never see each other's data, through the RPC.

Two guests try to find anything another call left behind:

* ``snoop`` (raw ABI) returns the first 128 KiB of its memory (its input sits
  at 4096 onwards, below that is whatever the instance started with) and a
  mutable global it increments;
* ``wasi-snoop`` (wasi-stdio) reports its environment and argument counts,
  what ``fd_prestat_get`` says of fds 3..9 (where preopened directories would
  be), a mutable global, and then the first 64 KiB of its memory, its stdin
  included. It spins a few milliseconds first, so calls overlap on the
  sandbox threads.

Every call from every tenant must see its own marker, nobody else's, a fresh
global, and an empty environment.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.asgi import create_app
from app.settings import Settings
from tests._clients import METHOD
from tests._servers import ROOT, thread_server
from tests.sandbox import _modules

SNOOP = _modules.raw(
    """
  (global $calls (mut i32) (i32.const 0))
  (func (export "handle") (param $p i32) (param $n i32) (result i64)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store (i32.const 0) (global.get $calls))
    (drop (memory.grow (i32.const 1)))
    (call $pack (i32.const 0) (i32.const 131072)))""",
)

EBADF = 8
_PRESTAT_FDS = range(3, 10)
# Header: environ count/size, argc/argv size, 7 prestat errnos, the global: 12 x u32.
_HEADER = struct.Struct("<12I")
WASI_SNOOP = _modules.wasi(
    """
  (global $calls (mut i32) (i32.const 0))
  (func (export "_start")
    (local $i i32) (local $fd i32) (local $n i32)
    ;; stdin -> 8192.. (at most 4 KiB), as far into memory as a caller could reach
    (local.set $n (call $read (i32.const 8192) (i32.const 4096)))
    (drop (call $environ_sizes_get (i32.const 1024) (i32.const 1028)))
    (drop (call $args_sizes_get (i32.const 1032) (i32.const 1036)))
    (drop (call $environ_get (i32.const 2048) (i32.const 3072)))
    (drop (call $args_get (i32.const 2048) (i32.const 3072)))
    (local.set $fd (i32.const 3))
    (loop $fds
      (i32.store
        (i32.add (i32.const 1040) (i32.shl (i32.sub (local.get $fd) (i32.const 3)) (i32.const 2)))
        (call $fd_prestat_get (local.get $fd) (i32.const 1536)))
      (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
      (br_if $fds (i32.lt_u (local.get $fd) (i32.const 10))))
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store (i32.const 1068) (global.get $calls))
    (loop $spin
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $spin (i32.lt_u (local.get $i) (i32.const 3000000))))
    (drop (call $write (i32.const 1) (i32.const 1024) (i32.const 48)))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 65536))))""",
    imports="""
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get"
    (func $fd_prestat_get (param i32 i32) (result i32)))""",
)


def _publish(root: Path, extension_id: str, wasm: bytes, abi: str) -> None:
    version = root / extension_id / "1"
    version.mkdir(parents=True)
    (version / "module.wasm").write_bytes(wasm)
    (version / "extension.json").write_text(
        json.dumps(
            {
                "id": extension_id,
                "version": "1",
                "abi": abi,
                "wasm_blob_ref": {"key": f"{extension_id}/1/module.wasm"},
                "sha256": hashlib.sha256(wasm).hexdigest(),
            }
        )
    )
    (root / extension_id / "promoted.json").write_text('{"version": "1"}')


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("extensions")
    shutil.copytree(ROOT / "examples" / "extensions" / "hello", root / "hello")
    _publish(root, "snoop", SNOOP, "raw")
    _publish(root, "wasi-snoop", WASI_SNOOP, "wasi-stdio")
    settings = Settings(auth_enabled=False, extensions_dir=root, executor_threads=2)
    with thread_server(create_app(settings)) as url:
        yield url


async def _call_all(served: str, extension_id: str, markers: list[str]) -> list[bytes]:
    async with httpx.AsyncClient(base_url=served, timeout=30) as client:

        async def call(i: int) -> bytes:
            body = {
                "context": {"tenantId": f"tenant-{i}", "organizationId": f"org-{i}"},
                "extensionId": extension_id,
                "inputBytes": base64.b64encode(markers[i].encode()).decode(),
                "outputFormat": "OUTPUT_FORMAT_BYTES",
            }
            response = await client.post(METHOD, json=body)
            assert response.status_code == 200, response.text
            return base64.b64decode(response.json()["outputBytes"])

        return list(await asyncio.gather(*(call(i) for i in range(len(markers)))))


def _assert_only_own(outputs: list[bytes], markers: list[str]) -> None:
    for i, memory in enumerate(outputs):
        assert markers[i].encode() in memory, f"tenant-{i} did not see its own input"
        leaked = [m for j, m in enumerate(markers) if j != i and m.encode() in memory]
        assert not leaked, f"tenant-{i} saw {leaked}"


async def test_concurrent_tenants_see_only_their_own_input(served: str) -> None:
    markers = [f"SECRET-of-tenant-{i}-" + "x" * 40 for i in range(24)]
    outputs = await _call_all(served, "snoop", markers)
    for memory in outputs:
        assert int.from_bytes(memory[:4], "little") == 1, "a global survived another call"
    _assert_only_own(outputs, markers)


async def test_wasi_guests_see_no_environment_and_nothing_of_each_other(served: str) -> None:
    markers = [f"WASI-SECRET-{i}-" + "y" * 40 for i in range(16)]
    outputs = await _call_all(served, "wasi-snoop", markers)
    for i, output in enumerate(outputs):
        header = _HEADER.unpack(output[: _HEADER.size])
        environ_count, environ_size, argc, argv_size = header[:4]
        assert (environ_count, environ_size) == (0, 0), f"tenant-{i} sees an environment"
        assert (argc, argv_size) == (0, 0), f"tenant-{i} sees arguments"
        prestat = header[4:11]
        assert prestat == (EBADF,) * len(_PRESTAT_FDS), f"tenant-{i} has preopens: {prestat}"
        assert header[11] == 1, "a global survived another call"
        memory = output[48:]
        assert len(memory) == 65536
        for secret in (b"EXTENSIONS_RUNTIME", b"PATH=", b"HOME=", b"/work", b"/tmp"):
            assert secret not in memory, f"tenant-{i} sees {secret!r}"
    _assert_only_own([o[48:] for o in outputs], markers)
