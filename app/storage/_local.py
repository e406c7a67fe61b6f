"""The embedded default source: a local directory laid out like the bucket."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app._ids import ID_PATTERN, TENANT_PATTERN, VERSION_PATTERN, fullmatch
from app.errors import ErrorKind, InvocationFailure
from app.storage._layout import (
    PLATFORM,
    TENANTS_DIR,
    definition_key,
    extension_prefix,
    owner_prefix,
    promoted_key,
)
from app.storage._source import MAX_DEFINITION_BYTES

__all__ = ["LocalDirectorySource"]


class LocalDirectorySource:
    """Reads ``root/{id}/...`` and ``root/_tenants/{tenant}/{id}/...``; used by
    ``make run`` and when no endpoint is set."""

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()

    @property
    def root(self) -> Path:
        return self._root

    def _children(self, path: Path, pattern: str) -> list[str]:
        if not path.is_dir() or path.is_symlink():
            return []
        return sorted(
            p.name
            for p in path.iterdir()
            if p.is_dir() and not p.is_symlink() and fullmatch(pattern, p.name)
        )

    async def list_owners(self) -> list[str]:
        return await asyncio.to_thread(self._children, self._root / TENANTS_DIR, TENANT_PATTERN)

    async def list_extensions(self, owner: str = PLATFORM) -> list[str]:
        return await asyncio.to_thread(self._children, self._root / owner_prefix(owner), ID_PATTERN)

    async def list_versions(self, extension_id: str, owner: str = PLATFORM) -> list[str]:
        return await asyncio.to_thread(
            self._children, self._root / extension_prefix(owner, extension_id), VERSION_PATTERN
        )

    def _read_small(self, path: Path) -> bytes | None:
        try:
            with path.open("rb") as handle:
                return handle.read(MAX_DEFINITION_BYTES + 1)
        except FileNotFoundError:
            return None

    async def read_definition(
        self, extension_id: str, version: str, owner: str = PLATFORM
    ) -> bytes | None:
        path = self._root / definition_key(owner, extension_id, version)
        return await asyncio.to_thread(self._read_small, path)

    async def read_promoted(self, extension_id: str, owner: str = PLATFORM) -> bytes | None:
        path = self._root / promoted_key(owner, extension_id)
        return await asyncio.to_thread(self._read_small, path)

    def _read_blob(self, key: str, max_bytes: int) -> bytes:
        path = (self._root / key).resolve()
        if not path.is_relative_to(self._root):
            raise InvocationFailure(ErrorKind.NOT_FOUND, "module blob not found")
        try:
            with path.open("rb") as handle:
                data = handle.read(max_bytes + 1)
        except FileNotFoundError:
            raise InvocationFailure(ErrorKind.NOT_FOUND, "module blob not found") from None
        if len(data) > max_bytes:
            raise InvocationFailure(
                ErrorKind.INVALID_MODULE, f"module is larger than {max_bytes} bytes"
            )
        return data

    async def read_blob(self, key: str, max_bytes: int) -> bytes:
        return await asyncio.to_thread(self._read_blob, key, max_bytes)

    async def check(self) -> str | None:
        if not self._root.is_dir():
            return f"extensions directory {self._root.name!r} does not exist"
        return None

    async def close(self) -> None:
        return None
