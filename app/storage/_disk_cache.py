"""Precompiled modules on local disk, shared by every worker process.

A precompiled artifact is native code and wasmtime's ``deserialize`` does not
detect corruption, so an artifact is only loaded from our own private
directory and only after its digest, written beside it, matches. Files are
written whole (:func:`app._files.write_atomically`), so a reader never sees
half an artifact.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app._files import write_atomically
from app.telemetry import get_logger

__all__ = ["DiskCache"]

_log = get_logger("app.storage.disk")


class DiskCache:
    """Artifacts keyed by module digest plus the engine's fingerprint."""

    def __init__(self, directory: Path, fingerprint: str) -> None:
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self._dir, 0o700)
        self._tag = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]

    def _paths(self, digest: str) -> tuple[Path, Path]:
        base = self._dir / f"{digest}-{self._tag}"
        return base.with_suffix(".cwasm"), base.with_suffix(".sha256")

    @contextmanager
    def exclusive(self, digest: str) -> Iterator[None]:
        """Hold ``digest``'s lock across processes (blocking): one of them compiles."""
        lock = self._dir / f"{digest}-{self._tag}.lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def load(self, digest: str) -> bytes | None:
        """The artifact for ``digest`` if present and intact; corrupt ones are removed."""
        artifact, check = self._paths(digest)
        try:
            data = artifact.read_bytes()
            expected = check.read_text().strip()
        except FileNotFoundError:
            return None
        if hashlib.sha256(data).hexdigest() != expected:
            _log.warning("storage.disk_cache_corrupt", digest=digest)
            artifact.unlink(missing_ok=True)
            check.unlink(missing_ok=True)
            return None
        return data

    def store(self, digest: str, data: bytes) -> None:
        """Write atomically: digest file last, so a present digest means a whole artifact."""
        artifact, check = self._paths(digest)
        write_atomically(artifact, data, mode=0o600)
        write_atomically(check, hashlib.sha256(data).hexdigest().encode(), mode=0o600)
