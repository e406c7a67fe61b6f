from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from app.catalog import Catalog, ExtensionDefinition
from app.errors import ErrorKind, InvocationFailure
from app.storage import LocalDirectorySource

WASM = b"\x00asm\x01\x00\x00\x00"


def _definition(ext: str, version: str, **over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "id": ext,
        "version": version,
        "abi": "raw",
        "risk_tier": "pure",
        "wasm_blob_ref": {"key": f"{ext}/{version}/module.wasm"},
        "sha256": hashlib.sha256(WASM).hexdigest(),
    }
    body.update(over)
    return body


def _publish(root: Path, body: dict[str, object] | str, ext: str, version: str) -> None:
    directory = root / ext / version
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "module.wasm").write_bytes(WASM)
    text = body if isinstance(body, str) else json.dumps(body)
    (directory / "extension.json").write_text(text)


def _promote(root: Path, ext: str, version: str) -> None:
    (root / ext / "promoted.json").write_text(json.dumps({"version": version}))


async def test_resolves_promoted_and_explicit_versions(tmp_path: Path) -> None:
    _publish(tmp_path, _definition("a", "1.0.0"), "a", "1.0.0")
    _publish(tmp_path, _definition("a", "2.0.0"), "a", "2.0.0")
    _promote(tmp_path, "a", "1.0.0")
    catalog = Catalog(LocalDirectorySource(tmp_path))
    assert await catalog.refresh() == 2
    assert catalog.resolve("a").version == "1.0.0"
    assert catalog.resolve("a", "2.0.0").version == "2.0.0"
    _promote(tmp_path, "a", "2.0.0")
    await catalog.refresh_extension("a")
    assert catalog.resolve("a").version == "2.0.0"


async def test_bad_definitions_are_skipped_not_fatal(tmp_path: Path) -> None:
    _publish(tmp_path, _definition("good", "1"), "good", "1")
    _publish(tmp_path, "{not json", "broken", "1")
    _publish(tmp_path, _definition("extra", "1", surprise=True), "extra", "1")
    _publish(tmp_path, _definition("moved", "9"), "moved", "1")  # id/version mismatch
    _publish(
        tmp_path,
        _definition("trav", "1", wasm_blob_ref={"key": "../../etc/passwd"}),
        "trav",
        "1",
    )
    _publish(tmp_path, _definition("tier", "1", risk_tier="Root!"), "tier", "1")
    catalog = Catalog(LocalDirectorySource(tmp_path))
    assert await catalog.refresh() == 1
    assert catalog.resolve("good", "1").id == "good"
    for bad in ("broken", "extra", "moved", "trav", "tier"):
        with pytest.raises(InvocationFailure) as info:
            catalog.resolve(bad, "1")
        assert info.value.kind is ErrorKind.NOT_FOUND


async def test_unknown_and_unpromoted_are_not_found(tmp_path: Path) -> None:
    _publish(tmp_path, _definition("a", "1"), "a", "1")
    catalog = Catalog(LocalDirectorySource(tmp_path))
    await catalog.refresh()
    with pytest.raises(InvocationFailure, match="no promoted version"):
        catalog.resolve("a")
    with pytest.raises(InvocationFailure, match="unknown extension"):
        catalog.resolve("nope")


def test_host_call_patterns_are_validated() -> None:
    good = _definition("a", "1", host_calls=["graph/GetNode"])
    assert ExtensionDefinition.from_json(json.dumps(good).encode()).host_calls == ("graph/GetNode",)
    with pytest.raises(ValueError, match="service/method"):
        ExtensionDefinition.from_json(json.dumps(_definition("a", "1", host_calls=["x"])).encode())
