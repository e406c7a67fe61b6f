"""The catalog: ``(extension_id, version)`` to a validated definition.

It is hydrated from a source at start and refreshed per extension. A bad
definition is logged and skipped; it never hides the good ones or stops the
service.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pydantic import ValidationError

from app.catalog.definition import ExtensionDefinition, PromotedPointer
from app.errors import ErrorKind, InvocationFailure
from app.storage import MAX_DEFINITION_BYTES, ObjectSource
from app.telemetry import get_logger

_log = get_logger("app.catalog")


@dataclass(slots=True)
class _Entry:
    versions: dict[str, ExtensionDefinition] = field(default_factory=dict)
    promoted: str | None = None


class Catalog:
    """Definitions by extension and version, with the promoted version of each."""

    def __init__(self, source: ObjectSource) -> None:
        self._source = source
        self._entries: dict[str, _Entry] = {}
        self._lock = asyncio.Lock()

    @property
    def source(self) -> ObjectSource:
        return self._source

    def extensions(self) -> dict[str, tuple[str | None, list[str]]]:
        """``{id: (promoted, versions)}`` for listings."""
        return {k: (e.promoted, sorted(e.versions)) for k, e in self._entries.items()}

    async def refresh(self) -> int:
        """Reload every extension; returns how many definitions are loaded."""
        ids = await self._source.list_extensions()
        for extension_id in ids:
            await self.refresh_extension(extension_id)
        for gone in set(self._entries) - set(ids):
            self._entries.pop(gone, None)
        return sum(len(e.versions) for e in self._entries.values())

    async def refresh_extension(self, extension_id: str) -> None:
        """Reload one extension's versions and promoted pointer."""
        entry = _Entry()
        for version in await self._source.list_versions(extension_id):
            definition = await self._load(extension_id, version)
            if definition is not None:
                entry.versions[version] = definition
        entry.promoted = await self._load_promoted(extension_id, entry)
        async with self._lock:
            if entry.versions:
                self._entries[extension_id] = entry
            else:
                self._entries.pop(extension_id, None)

    async def _load(self, extension_id: str, version: str) -> ExtensionDefinition | None:
        raw = await self._source.read_definition(extension_id, version)
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
                if (definition.id, definition.version) == (extension_id, version):
                    return definition
                problem = "id/version do not match the definition's location"
        _log.warning(
            "catalog.definition_rejected", extension=extension_id, version=version, problem=problem
        )
        return None

    async def _load_promoted(self, extension_id: str, entry: _Entry) -> str | None:
        raw = await self._source.read_promoted(extension_id)
        if raw is None:
            return None
        try:
            version = PromotedPointer.model_validate_json(raw).version
        except ValidationError:
            _log.warning("catalog.promoted_rejected", extension=extension_id)
            return None
        if version not in entry.versions:
            _log.warning("catalog.promoted_missing", extension=extension_id, version=version)
            return None
        return version

    def resolve(self, extension_id: str, version: str = "") -> ExtensionDefinition:
        """The definition to run; ``NOT_FOUND`` when there is none."""
        entry = self._entries.get(extension_id)
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
