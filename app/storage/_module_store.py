"""Compiled modules by sha256: memory LRU, then the source; one compile per digest.

The digest in the definition is the identity of a module: bytes that do not
hash to it are never compiled or cached (INTEGRITY_MISMATCH), and two versions
with the same bytes share one compiled module. Concurrent first calls for the
same digest wait on one download and one compile (singleflight).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from app._singleflight import SingleFlight
from app.errors import ErrorKind, InvocationFailure
from app.storage._disk_cache import DiskCache
from app.storage._source import ObjectSource
from app.telemetry import Family, get_logger, single

__all__ = ["Compiler", "ModuleStore", "Preparable", "StoreStats"]

_log = get_logger("app.storage")


class Compiler(Protocol):
    """Turns verified module bytes into something the sandbox can run."""

    @property
    def fingerprint(self) -> str:
        """Identifies the engine build and config a serialized artifact is valid for."""
        ...

    def compile(self, wasm: bytes, abi: str) -> Any: ...

    def serialize(self, compiled: Any) -> bytes: ...

    def deserialize(self, data: bytes, abi: str) -> Any: ...


@dataclass(slots=True)
class StoreStats:
    """Counters the tests and metrics read."""

    hits: int = 0
    misses: int = 0
    downloads: int = 0
    compiles: int = 0
    disk_hits: int = 0
    integrity_failures: int = 0
    waits_cut: int = 0
    """Callers whose deadline came before their version was ready."""


class _BlobRef(Protocol):
    @property
    def key(self) -> str: ...


class Preparable(Protocol):
    """What :meth:`ModuleStore.warm` needs of a definition."""

    @property
    def sha256(self) -> str: ...

    @property
    def abi(self) -> str: ...

    @property
    def wasm_blob_ref(self) -> _BlobRef: ...


class ModuleStore:
    """Memory-cached compiled modules, fetched and compiled at most once at a time."""

    def __init__(
        self,
        source: ObjectSource,
        compiler: Compiler,
        *,
        max_entries: int = 256,
        max_module_bytes: int = 32 * 1024 * 1024,
        disk_dir: Path | None = None,
    ) -> None:
        self._source = source
        self._compiler = compiler
        self._max_entries = max_entries
        self._max_module_bytes = max_module_bytes
        self._cache: OrderedDict[str, object] = OrderedDict()
        self._loads: SingleFlight[str, object] = SingleFlight()
        self.stats = StoreStats()
        self._disk = DiskCache(disk_dir, compiler.fingerprint) if disk_dir else None

    def cached(self) -> list[str]:
        """Digests held in memory, least recently used first."""
        return list(self._cache)

    def metric_families(self) -> Iterable[Family]:
        """The cache's counters, read where they are kept (``/metrics``)."""
        stats = self.stats
        for name, value, doc in (
            ("module_cache_hits", stats.hits, "Compiled modules served from memory."),
            ("module_cache_misses", stats.misses, "Lookups that missed the memory cache."),
            ("module_cache_disk_hits", stats.disk_hits, "Precompiled modules loaded from disk."),
            ("module_cache_compiles", stats.compiles, "Modules compiled."),
            ("module_downloads", stats.downloads, "Module blobs read from storage."),
            ("integrity_failures", stats.integrity_failures, "Blobs that failed their digest."),
            (
                "module_waits_cut",
                stats.waits_cut,
                "Calls answered UNAVAILABLE because their version was still being prepared.",
            ),
        ):
            yield single("counter", name, doc, value)

    def peek(self, digest: str) -> Any:
        """The compiled module if it is in memory (a hit), else ``None``; never waits.

        Lets a caller skip giving up its tenant's turn around a lookup that
        cannot wait: under load the turn would go to the next waiting call and
        this one queue again behind all the others.
        """
        module = self._cache.get(digest)
        if module is not None:
            self._cache.move_to_end(digest)
            self.stats.hits += 1
        return module

    async def get(self, digest: str, key: str, abi: str, *, within_s: float | None = None) -> Any:
        """The compiled module whose bytes hash to ``digest``, read from ``key``.

        ``within_s`` bounds the wait (the caller's deadline): past it the caller
        gets ``UNAVAILABLE`` while the load goes on for everyone else.
        """
        module = self.peek(digest)
        if module is not None:
            return module
        self.stats.misses += 1
        loading = self._loads.wait(digest, lambda: self._load_and_remember(digest, key, abi))
        if within_s is None:
            return await loading
        try:
            return await asyncio.wait_for(loading, max(0.0, within_s))
        except TimeoutError:
            self.stats.waits_cut += 1
            raise InvocationFailure(
                ErrorKind.UNAVAILABLE,
                "this version is still being prepared (downloaded and compiled); retry shortly",
                caller_side=True,
            ) from None

    async def warm(self, definition: Preparable) -> None:
        """Load and compile ``definition``'s module now (a promotion); never raises."""
        try:
            await self.get(definition.sha256, definition.wasm_blob_ref.key, definition.abi)
        except InvocationFailure as failure:
            _log.warning(
                "storage.warm_failed",
                digest=definition.sha256,
                kind=failure.kind.value,
                message=failure.message,
            )
        except Exception:  # noqa: BLE001 - a promotion must not fail on a bad module
            _log.exception("storage.warm_failed", digest=definition.sha256)

    async def _load_and_remember(self, digest: str, key: str, abi: str) -> object:
        module = await self._load(digest, key, abi)
        self._remember(digest, module)
        return module

    async def _load(self, digest: str, key: str, abi: str) -> object:
        if self._disk is not None:
            module = await asyncio.to_thread(self._from_disk, digest, abi)
            if module is not None:
                self.stats.disk_hits += 1
                return module
        data = await self._source.read_blob(key, self._max_module_bytes)
        self.stats.downloads += 1
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            self.stats.integrity_failures += 1
            _log.error(
                "storage.integrity_mismatch",
                key=key,
                expected=digest,
                actual=actual,
            )
            raise InvocationFailure(
                ErrorKind.INTEGRITY_MISMATCH,
                "the stored module does not match the digest it was promoted with",
            )
        self.stats.compiles += 1
        return await asyncio.to_thread(self._compile, digest, data, abi)

    def _from_disk(self, digest: str, abi: str) -> Any:
        assert self._disk is not None
        artifact = self._disk.load(digest)
        if artifact is None:
            return None
        try:
            return self._compiler.deserialize(artifact, abi)
        except Exception:  # noqa: BLE001 - a bad artifact only costs a recompile
            _log.warning("storage.disk_cache_unusable", digest=digest)
            return None

    def _compile(self, digest: str, data: bytes, abi: str) -> object:
        if self._disk is None:
            return self._compiler.compile(data, abi)
        # One compile across the worker processes sharing the directory: the
        # others wait for it here and then load its artifact.
        with self._disk.exclusive(digest):
            module = self._from_disk(digest, abi)
            if module is not None:
                self.stats.disk_hits += 1
                return module
            module = self._compiler.compile(data, abi)
            try:
                self._disk.store(digest, self._compiler.serialize(module))
            except OSError as exc:
                _log.warning("storage.disk_cache_write_failed", digest=digest, error=str(exc))
            return module

    def _remember(self, digest: str, module: object) -> None:
        self._cache[digest] = module
        self._cache.move_to_end(digest)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
