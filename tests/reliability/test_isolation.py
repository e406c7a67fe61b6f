"""Tenant isolation: concurrent callers never see each other's data, through the RPC."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shutil
from collections.abc import Iterator

import httpx
import pytest

from app.asgi import create_app
from app.settings import Settings
from tests._clients import METHOD
from tests._servers import ROOT, thread_server
from tests.sandbox import _modules

# Returns the first 128 KiB of its memory (its input sits at 4096 onwards) plus a
# global it increments: anything a previous call left behind would show up.
SNOOP = _modules.raw(
    """
  (global $calls (mut i32) (i32.const 0))
  (func (export "handle") (param $p i32) (param $n i32) (result i64)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store (i32.const 0) (global.get $calls))
    (drop (memory.grow (i32.const 1)))
    (call $pack (i32.const 0) (i32.const 131072)))""",
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("extensions")
    shutil.copytree(ROOT / "examples" / "extensions" / "hello", root / "hello")
    version = root / "snoop" / "1"
    version.mkdir(parents=True)
    (version / "module.wasm").write_bytes(SNOOP)
    (version / "extension.json").write_text(
        json.dumps(
            {
                "id": "snoop",
                "version": "1",
                "abi": "raw",
                "wasm_blob_ref": {"key": "snoop/1/module.wasm"},
                "sha256": hashlib.sha256(SNOOP).hexdigest(),
            }
        )
    )
    (root / "snoop" / "promoted.json").write_text('{"version": "1"}')
    settings = Settings(auth_enabled=False, extensions_dir=root, executor_threads=2)
    with thread_server(create_app(settings)) as url:
        yield url


async def test_concurrent_tenants_see_only_their_own_input(served: str) -> None:
    markers = [f"SECRET-of-tenant-{i}-" + "x" * 40 for i in range(24)]

    async with httpx.AsyncClient(base_url=served, timeout=30) as client:

        async def call(i: int) -> bytes:
            body = {
                "context": {"tenantId": f"tenant-{i}"},
                "extensionId": "snoop",
                "inputBytes": base64.b64encode(markers[i].encode()).decode(),
                "outputFormat": "OUTPUT_FORMAT_BYTES",
            }
            response = await client.post(METHOD, json=body)
            assert response.status_code == 200, response.text
            return base64.b64decode(response.json()["outputBytes"])

        outputs = await asyncio.gather(*(call(i) for i in range(len(markers))))
    for i, memory in enumerate(outputs):
        assert int.from_bytes(memory[:4], "little") == 1, "a global survived another call"
        assert markers[i].encode() in memory
        leaked = [m for j, m in enumerate(markers) if j != i and m.encode() in memory]
        assert not leaked, f"tenant-{i} saw {leaked}"
