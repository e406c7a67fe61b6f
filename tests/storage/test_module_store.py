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


class _GatedCompiler(_CountingCompiler):
    """Compiles only once ``release`` is set: a compile that takes as long as a test wants."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def compile(self, wasm: bytes, abi: str) -> object:
        assert self.release.wait(30)
        return super().compile(wasm, abi)


async def test_a_caller_waits_for_a_compile_no_longer_than_its_deadline(tmp_path: Path) -> None:
    _publish(tmp_path, "a", "1", b"module-a")
    source = LocalDirectorySource(tmp_path)
    catalog = Catalog(source)
    await catalog.refresh()
    compiler = _GatedCompiler()
    store = ModuleStore(source, compiler)
    definition = catalog.resolve("t", "a", "1")
    key = definition.wasm_blob_ref.key
    with pytest.raises(InvocationFailure) as cut:
        await store.get(definition.sha256, key, "raw", within_s=0.05)
    assert cut.value.kind is ErrorKind.UNAVAILABLE and cut.value.caller_side
    assert "still being prepared" in cut.value.message
    assert store.stats.waits_cut == 1
    compiler.release.set()  # the compile went on for everyone else
    module = await store.get(definition.sha256, key, "raw", within_s=30)
    assert module == ("compiled", definition.sha256, "raw")
    assert compiler.calls == 1


async def test_a_promotion_is_compiled_before_its_pointer_is_followed(tmp_path: Path) -> None:
    _publish(tmp_path, "a", "1", b"module-1")
    (tmp_path / "a" / "promoted.json").write_text('{"version": "1"}')
    source = LocalDirectorySource(tmp_path)
    compiler = _GatedCompiler()
    store = ModuleStore(source, compiler)
    catalog = Catalog(source, warm=store.warm)
    await catalog.refresh(warm=False)  # start: nothing compiled, nothing waited for
    assert compiler.calls == 0
    _publish(tmp_path, "a", "2", b"module-2")
    (tmp_path / "a" / "promoted.json").write_text('{"version": "2"}')
    promotion = asyncio.create_task(catalog.refresh_extension("a"))
    await asyncio.sleep(0.2)
    assert not promotion.done()
    assert catalog.resolve("t", "a", "").version == "1"  # callers keep the old version
    compiler.release.set()
    await promotion
    assert catalog.resolve("t", "a", "").version == "2"
    assert store.cached() == [hashlib.sha256(b"module-2").hexdigest()]
    await catalog.refresh_extension("a")  # the same promotion again: no second compile
    assert compiler.calls == 1


@pytest.mark.integration
def test_processes_sharing_a_cache_directory_compile_once(tmp_path: Path) -> None:
    """Two processes' stores race for one digest: one compiles, the other loads its artifact."""
    import subprocess
    import sys

    _publish(tmp_path / "ext", "a", "1", b"module-a")
    script = f"""
import asyncio, hashlib, json, sys, time
from pathlib import Path
from app.storage import LocalDirectorySource, ModuleStore

class Slow:
    fingerprint = "test-engine-1"
    def serialize(self, c): return json.dumps(c).encode()
    def deserialize(self, d, abi): return tuple(json.loads(d))
    def compile(self, wasm, abi):
        time.sleep(1.0)
        print("compiled", flush=True)
        return ["compiled", abi]

store = ModuleStore(LocalDirectorySource(Path({str(tmp_path / "ext")!r})), Slow(),
                    disk_dir=Path({str(tmp_path / "cache")!r}))
digest = hashlib.sha256(b"module-a").hexdigest()
print(asyncio.run(store.get(digest, "a/1/module.wasm", "raw")), flush=True)
"""
    runs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=60)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs)
    assert sum(out.count("compiled\n") for out in outputs) == 1
    assert all("('compiled', 'raw')" in out or "['compiled', 'raw']" in out for out in outputs)
