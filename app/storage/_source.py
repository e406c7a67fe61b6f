"""What the catalog and the module store read from: the :class:`ObjectSource` protocol.

Both sources (``_local``, ``_s3``) lay objects out as ``_layout`` describes.
"""

from __future__ import annotations

from typing import Protocol

from app.storage._layout import PLATFORM

__all__ = ["MAX_DEFINITION_BYTES", "ObjectSource"]

MAX_DEFINITION_BYTES = 256 * 1024
"""Largest definition or promotion pointer read."""


class ObjectSource(Protocol):
    """Read access to published definitions and module blobs.

    ``read_definition``/``read_promoted`` return ``None`` when the object does
    not exist; ``read_blob`` raises ``InvocationFailure`` (NOT_FOUND,
    INVALID_MODULE when too large, UNAVAILABLE when storage is down).
    """

    async def list_owners(self) -> list[str]:
        """Tenants that have a folder of their own extensions."""
        ...

    async def list_extensions(self, owner: str = PLATFORM) -> list[str]: ...

    async def list_versions(self, extension_id: str, owner: str = PLATFORM) -> list[str]: ...

    async def read_definition(
        self, extension_id: str, version: str, owner: str = PLATFORM
    ) -> bytes | None: ...

    async def read_promoted(self, extension_id: str, owner: str = PLATFORM) -> bytes | None: ...

    async def read_blob(self, key: str, max_bytes: int) -> bytes: ...

    async def check(self) -> str | None:
        """``None`` when the source is usable, otherwise why not (for /readyz)."""
        ...

    async def close(self) -> None: ...
