"""Where definitions and module bytes are read from.

Layout, identical in a local directory and under the bucket's prefix:
``{id}/promoted.json`` names the promoted version, ``{id}/{version}/extension.json``
is the definition, and the module bytes live at the definition's
``wasm_blob_ref.key`` (conventionally ``{id}/{version}/module.wasm``).

Those are **platform** extensions, which every tenant may call. A tenant's own
extensions live the same way under ``_tenants/{tenant}/``, so ids repeat
across tenants without colliding, and a listing of one tenant's folder never
sees another's. ``_tenants`` cannot be an extension id (ids start with a
letter or digit), so the two trees never overlap.
"""

from __future__ import annotations

from typing import Protocol

from app import _ids

# Storage path segments are ids: one definition of each shape, in app._ids.
ID_PATTERN = _ids.ID_PATTERN
VERSION_PATTERN = _ids.VERSION_PATTERN
TENANT_PATTERN = _ids.TENANT_PATTERN
MAX_DEFINITION_BYTES = 256 * 1024
TENANTS_DIR = "_tenants"
PLATFORM = ""
"""The owner of platform extensions (no tenant)."""

__all__ = [
    "ID_PATTERN",
    "MAX_DEFINITION_BYTES",
    "PLATFORM",
    "TENANTS_DIR",
    "TENANT_PATTERN",
    "VERSION_PATTERN",
    "ObjectSource",
    "owner_prefix",
]


def owner_prefix(owner: str) -> str:
    """Where ``owner``'s extensions live, relative to the store's root or prefix."""
    return f"{TENANTS_DIR}/{owner}/" if owner else ""


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
