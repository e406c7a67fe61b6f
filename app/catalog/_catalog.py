"""The catalog: ``(caller's tenant, extension_id, version)`` to a validated definition.

Extensions are owned: by one tenant, or by the platform (every tenant may call
those). A caller sees its own tenant's extensions first, then platform ones,
and never another tenant's: asking for one is ``NOT_FOUND`` with the same
message as an id nobody has, so existence does not leak. A tenant's own
extension shadows a platform one with the same id entirely (all versions).

It is hydrated from a source at start and refreshed per extension. A bad
definition is logged and skipped; it never hides the good ones or stops the
service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from pydantic import ValidationError

from app.catalog._definition import ExtensionDefinition, PromotedPointer
from app.errors import ErrorKind, InvocationFailure
from app.storage import MAX_DEFINITION_BYTES, PLATFORM, ObjectSource, in_owners_tree
from app.telemetry import Family, get_logger, single

__all__ = ["Catalog", "ExtensionKey"]

_log = get_logger("app.catalog")


ExtensionKey = tuple[str, str]
"""``(owner, extension_id)``; the owner is a tenant id or ``""`` for the platform."""


Warm = Callable[[ExtensionDefinition], Awaitable[None]]
"""Makes a definition's module ready to run (downloaded and compiled); never raises."""


@dataclass(slots=True)
class _Entry:
    versions: dict[str, ExtensionDefinition] = field(default_factory=dict)
    promoted: str | None = None
    pointer: PromotedPointer | None = None
    """The whole promotion pointer, rollout options included."""


class Catalog:
    """Definitions by extension and version, with the promoted version of each."""

    def __init__(self, source: ObjectSource, *, warm: Warm | None = None) -> None:
        self._source = source
        self._warm = warm
        self._entries: dict[ExtensionKey, _Entry] = {}
        self._lock = asyncio.Lock()

    @property
    def source(self) -> ObjectSource:
        return self._source

    def extensions(self) -> dict[ExtensionKey, tuple[str | None, list[str]]]:
        """``{(owner, id): (promoted, versions)}`` for listings."""
        return {k: (e.promoted, sorted(e.versions)) for k, e in self._entries.items()}

    @property
    def definitions(self) -> int:
        """Extension versions loaded."""
        return sum(len(e.versions) for e in self._entries.values())

    def metric_families(self) -> Iterable[Family]:
        yield single(
            "gauge",
            "catalog_definitions",
            "Extension versions loaded in the catalog.",
            self.definitions,
        )

    async def refresh(self, *, warm: bool = True) -> int:
        """Reload every extension; returns how many definitions are loaded.

        ``warm``: compile a newly promoted module before following it (off for
        the first load at start, which must not wait for every compile: those
        happen on first use, or come from the disk cache).
        """
        keys = [(PLATFORM, i) for i in await self._source.list_extensions()]
        for owner in await self._source.list_owners():
            keys.extend((owner, i) for i in await self._source.list_extensions(owner))
        for owner, extension_id in keys:
            await self.refresh_extension(extension_id, owner, warm=warm)
        for gone in set(self._entries) - set(keys):
            self._entries.pop(gone, None)
        return sum(len(e.versions) for e in self._entries.values())

    async def refresh_extension(
        self, extension_id: str, owner: str = PLATFORM, *, warm: bool = True
    ) -> None:
        """Reload one extension's versions and promoted pointer."""
        entry = _Entry()
        for version in await self._source.list_versions(extension_id, owner):
            definition = await self._load(owner, extension_id, version)
            if definition is not None:
                entry.versions[version] = definition
        entry.pointer = await self._load_promoted(owner, extension_id, entry)
        entry.promoted = entry.pointer.version if entry.pointer else None
        if warm and self._warm is not None and entry.promoted is not None:
            promoted = entry.versions[entry.promoted]
            current = self._entries.get((owner, extension_id))
            followed = current.versions.get(current.promoted or "") if current else None
            if followed is None or followed.sha256 != promoted.sha256:
                # Before the new pointer is followed: callers keep the old version
                # meanwhile instead of waiting for the new one to compile.
                await self._warm(promoted)
        async with self._lock:
            if entry.versions:
                self._entries[owner, extension_id] = entry
            else:
                self._entries.pop((owner, extension_id), None)

    async def _load(
        self, owner: str, extension_id: str, version: str
    ) -> ExtensionDefinition | None:
        raw = await self._source.read_definition(extension_id, version, owner)
        if raw is None:
            return None
        problem: str
        if len(raw) > MAX_DEFINITION_BYTES:
            problem = "definition too large"
        else:
            try:
                definition = ExtensionDefinition.from_json(raw)
            except ValidationError as exc:
                problem = "; ".join(
                    f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5]
                )
            else:
                problem = _misplaced(definition, owner, extension_id, version)
                if not problem:
                    return definition
        _log.warning(
            "catalog.definition_rejected",
            owner=owner or "_platform",
            extension=extension_id,
            version=version,
            problem=problem,
        )
        return None

    async def _load_promoted(
        self, owner: str, extension_id: str, entry: _Entry
    ) -> PromotedPointer | None:
        raw = await self._source.read_promoted(extension_id, owner)
        if raw is None:
            return None
        try:
            pointer = PromotedPointer.model_validate_json(raw)
        except ValidationError:
            _log.warning("catalog.promoted_rejected", owner=owner, extension=extension_id)
            return None
        if pointer.version not in entry.versions:
            _log.warning(
                "catalog.promoted_missing",
                owner=owner,
                extension=extension_id,
                version=pointer.version,
            )
            return None
        for name in ("previous", "candidate"):
            named = getattr(pointer, name)
            if named is not None and named not in entry.versions:
                # The promotion holds; only the rollout option naming nothing is dropped.
                _log.warning(
                    "catalog.rollout_version_missing",
                    owner=owner,
                    extension=extension_id,
                    option=name,
                    version=named,
                )
                pointer = pointer.model_copy(update={name: None})
        return pointer

    def pointers(self) -> dict[ExtensionKey, PromotedPointer]:
        """Every loaded promotion pointer, for the rollout listing."""
        return {k: e.pointer for k, e in self._entries.items() if e.pointer is not None}

    def pointer(
        self, tenant: str, extension_id: str
    ) -> tuple[ExtensionKey, PromotedPointer] | None:
        """The promotion pointer of the extension ``tenant`` would get, with its key."""
        key = (tenant, extension_id)
        entry = self._entries.get(key) if tenant else None
        if entry is None:
            key = (PLATFORM, extension_id)
            entry = self._entries.get(key)
        if entry is None or entry.pointer is None:
            return None
        return key, entry.pointer

    def lookup(self, owner: str, extension_id: str, version: str) -> ExtensionDefinition | None:
        """Exactly ``owner``'s definition (no platform fallback), for operators' listings."""
        entry = self._entries.get((owner, extension_id))
        return entry.versions.get(version) if entry else None

    def resolve(self, tenant: str, extension_id: str, version: str = "") -> ExtensionDefinition:
        """The definition ``tenant`` gets: its own extension, else a platform one.

        ``NOT_FOUND`` when there is none, worded the same whether or not another
        tenant has an extension with that id.
        """
        entry = (self._entries.get((tenant, extension_id)) if tenant else None) or (
            self._entries.get((PLATFORM, extension_id))
        )
        if entry is None:
            raise InvocationFailure(ErrorKind.NOT_FOUND, f"unknown extension {extension_id!r}")
        chosen = version or entry.promoted
        if not chosen:
            raise InvocationFailure(
                ErrorKind.NOT_FOUND, f"extension {extension_id!r} has no promoted version"
            )
        definition = entry.versions.get(chosen)
        if definition is None:
            raise InvocationFailure(
                ErrorKind.NOT_FOUND, f"extension {extension_id!r} has no version {chosen!r}"
            )
        return definition


def _misplaced(definition: ExtensionDefinition, owner: str, extension_id: str, version: str) -> str:
    """Why a definition may not live where it was found; empty when it may.

    The location decides who may call it, so the definition must agree with
    it, and a tenant's definition may only point at bytes in its own folder
    (a platform one never into a tenant's): a definition cannot borrow another
    owner's module.
    """
    if (definition.id, definition.version) != (extension_id, version):
        return "id/version do not match the definition's location"
    if definition.owner_key != owner:
        return "owner does not match the definition's location"
    if in_owners_tree(definition.wasm_blob_ref.key, owner):
        return ""
    if owner:
        return "a tenant's module must live under its own folder"
    return "a platform module may not live under a tenant's folder"
