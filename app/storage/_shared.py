"""Storage the processes of a fleet write to as well as read: :class:`SharedStore`.

Extensions are read-only to the runtime; the fleet's control state
(``app/fleet``) is the one thing it writes. The S3 source is a shared store
(every pod of the deployment reads the same bucket); a local directory is
not one (it may be the repository's examples), so there the control state
lives in a :class:`MemoryStore`: a fleet of one process.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from app.errors import ErrorKind, InvocationFailure

__all__ = ["MemoryStore", "SharedStore", "StoredObject"]


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One listed object: enough to tell whether it changed and how old it is."""

    key: str
    etag: str
    modified: float
    """Seconds since the epoch, by the *store's* clock (compare only with each other)."""


class SharedStore(Protocol):
    """Small objects under one prefix, listed with their ETags in one request."""

    async def list_objects(self, prefix: str, limit: int) -> list[StoredObject]:
        """Every object under ``prefix`` (at most ``limit``); raises UNAVAILABLE."""
        ...

    async def read_object(self, key: str, max_bytes: int) -> bytes | None: ...

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def delete(self, key: str) -> None: ...


class MemoryStore:
    """A :class:`SharedStore` held in this process (tests, and a local directory)."""

    def __init__(self) -> None:
        self._objects: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()
        self.fail: str | None = None
        """When set, every operation fails with this reason (tests of an outage)."""

    def _check(self) -> None:
        if self.fail is not None:
            raise InvocationFailure(ErrorKind.UNAVAILABLE, self.fail)

    async def list_objects(self, prefix: str, limit: int) -> list[StoredObject]:
        self._check()
        with self._lock:
            listed = sorted((k, v) for k, v in self._objects.items() if k.startswith(prefix))
        return [
            StoredObject(key, hashlib.sha256(data).hexdigest()[:32], modified)
            for key, (data, modified) in listed[:limit]
        ]

    async def read_object(self, key: str, max_bytes: int) -> bytes | None:
        self._check()
        with self._lock:
            found = self._objects.get(key)
        return found[0][:max_bytes] if found else None

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        self._check()
        with self._lock:
            self._objects[key] = (data, time.time())

    async def delete(self, key: str) -> None:
        self._check()
        with self._lock:
            self._objects.pop(key, None)
