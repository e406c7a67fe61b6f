from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from pathlib import Path

import pytest

from app.catalog import Catalog, ExtensionDefinition
from app.errors import ErrorKind, InvocationFailure
from app.storage import LocalDirectorySource, ModuleStore


class _CountingCompiler:
    fingerprint = "test-engine-1"

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def serialize(self, compiled: object) -> bytes:
        return json.dumps(compiled).encode()

    def deserialize(self, data: bytes, abi: str) -> object:
        return tuple(json.loads(data))

    def compile(self, wasm: bytes, abi: str) -> object:
        with self._lock:
            self.calls += 1
        return ("compiled", hashlib.sha256(wasm).hexdigest(), abi)


def _publish(root: Path, ext: str, version: str, wasm: bytes, digest: str | None = None) -> None:
    directory = root / ext / version
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "module.wasm").write_bytes(wasm)
    (directory / "extension.json").write_text(
        json.dumps(
            {
                "id": ext,
                "version": version,
                "abi": "raw",
                "wasm_blob_ref": {"key": f"{ext}/{version}/module.wasm"},
                "sha256": digest or hashlib.sha256(wasm).hexdigest(),
            }
        )
    )


async def _get(store: ModuleStore, definition: ExtensionDefinition) -> object:
    return await store.get(definition.sha256, definition.wasm_blob_ref.key, definition.abi)


async def _setup(tmp_path: Path) -> tuple[Catalog, ModuleStore, _CountingCompiler]:
    source = LocalDirectorySource(tmp_path)
    catalog = Catalog(source)
    await catalog.refresh()
    compiler = _CountingCompiler()
    return catalog, ModuleStore(source, compiler, max_entries=2), compiler


async def test_concurrent_first_calls_compile_once(tmp_path: Path) -> None:
    _publish(tmp_path, "a", "1", b"module-a")
    catalog, store, compiler = await _setup(tmp_path)
    definition = catalog.resolve("t", "a", "1")
    results = await asyncio.gather(*(_get(store, definition) for _ in range(100)))
    assert len({id(r) for r in results}) == 1
    assert compiler.calls == 1
    assert store.stats.downloads == 1


async def test_integrity_mismatch_is_never_cached(tmp_path: Path) -> None:
    _publish(tmp_path, "a", "1", b"tampered", digest=hashlib.sha256(b"original").hexdigest())
    catalog, store, compiler = await _setup(tmp_path)
    definition = catalog.resolve("t", "a", "1")
    for _ in range(2):
        with pytest.raises(InvocationFailure) as info:
            await _get(store, definition)
        assert info.value.kind is ErrorKind.INTEGRITY_MISMATCH
    assert compiler.calls == 0
    assert store.cached() == []
    (tmp_path / "a" / "1" / "module.wasm").write_bytes(b"original")
    assert await _get(store, definition)
    assert compiler.calls == 1


async def test_lru_is_bounded(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        _publish(tmp_path, name, "1", name.encode())
    catalog, store, compiler = await _setup(tmp_path)
    for name in ("a", "b", "c"):
        await _get(store, catalog.resolve("t", name, "1"))
    assert len(store.cached()) == 2
    await _get(store, catalog.resolve("t", "c", "1"))
    assert store.stats.hits == 1
    await _get(store, catalog.resolve("t", "a", "1"))
    assert compiler.calls == 4


async def test_missing_blob_is_not_found(tmp_path: Path) -> None:
    _publish(tmp_path, "a", "1", b"x")
    (tmp_path / "a" / "1" / "module.wasm").unlink()
    catalog, store, _ = await _setup(tmp_path)
    with pytest.raises(InvocationFailure) as info:
        await _get(store, catalog.resolve("t", "a", "1"))
    assert info.value.kind is ErrorKind.NOT_FOUND


async def test_disk_cache_skips_compile_after_restart(tmp_path: Path) -> None:
    _publish(tmp_path / "src", "a", "1", b"module-a")
    source = LocalDirectorySource(tmp_path / "src")
    catalog = Catalog(source)
    await catalog.refresh()
    definition = catalog.resolve("t", "a", "1")
    first = _CountingCompiler()
    store = ModuleStore(source, first, disk_dir=tmp_path / "cache")
    compiled = await _get(store, definition)
    assert first.calls == 1
    second = _CountingCompiler()
    restarted = ModuleStore(source, second, disk_dir=tmp_path / "cache")
    assert await _get(restarted, definition) == compiled
    assert (second.calls, restarted.stats.disk_hits, restarted.stats.downloads) == (0, 1, 0)


async def test_corrupt_disk_artifact_is_recompiled(tmp_path: Path) -> None:
    _publish(tmp_path / "src", "a", "1", b"module-a")
    source = LocalDirectorySource(tmp_path / "src")
    catalog = Catalog(source)
    await catalog.refresh()
    definition = catalog.resolve("t", "a", "1")
    await _get(ModuleStore(source, _CountingCompiler(), disk_dir=tmp_path / "cache"), definition)
    (artifact,) = (tmp_path / "cache").glob("*.cwasm")
    artifact.write_bytes(b"evil native code")
    compiler = _CountingCompiler()
    store = ModuleStore(source, compiler, disk_dir=tmp_path / "cache")
    await _get(store, definition)
    assert (compiler.calls, store.stats.disk_hits) == (1, 0)
