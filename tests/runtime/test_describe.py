"""What the runtime lists: everything for operators, only what a tenant may call for it."""

from __future__ import annotations

import shutil
from pathlib import Path

from app.catalog import build_definition, publish
from app.runtime import Runtime
from app.settings import Settings
from tests._servers import ROOT

EXAMPLES = ROOT / "examples" / "extensions"


async def _own(root: Path, tenant: str, extension_id: str) -> None:
    wasm = (EXAMPLES / "echo" / "1.0.0" / "module.wasm").read_bytes()
    definition = build_definition(
        wasm,
        extension_id=extension_id,
        version="9.0.0",
        abi="raw",
        tier="pure",
        limits={},
        host_calls=[],
        config={},
        owner=tenant,
    )
    await publish(Settings(extensions_dir=root), definition, wasm, promote=True)


async def test_a_tenant_sees_its_own_and_the_platform_extensions_only(tmp_path: Path) -> None:
    root = tmp_path / "extensions"
    shutil.copytree(EXAMPLES, root)
    await _own(root, "acme", "discount-rules")
    await _own(root, "acme", "echo")  # shadows the platform echo for acme
    await _own(root, "globex", "secret-sauce")
    runtime = Runtime(Settings(extensions_dir=root, catalog_poll_interval_s=0))
    await runtime.start()
    try:
        everything = {(v.owner, v.extension_id) for v in runtime.describe()}
        assert {("acme", "discount-rules"), ("acme", "echo"), ("globex", "secret-sauce")} <= (
            everything
        )
        assert ("_platform", "echo") in everything
        acme = {(v.owner, v.extension_id): v for v in runtime.describe("acme")}
        assert ("globex", "secret-sauce") not in acme
        assert ("_platform", "echo") not in acme and ("acme", "echo") in acme
        assert acme["acme", "echo"].versions[0].definition.version == "9.0.0"
        assert ("_platform", "hello") in acme
        initech = {(v.owner, v.extension_id) for v in runtime.describe("initech")}
        assert all(owner == "_platform" for owner, _ in initech)
        assert ("_platform", "echo") in initech
    finally:
        await runtime.close()
