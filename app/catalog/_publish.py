"""Publishing a version the way Transformation does: module, definition, then pointer.

``extensions-runtime publish`` and the tests write through here. The blob goes
first, then the definition, then (with ``promote``) the pointer, so a reader
never sees a definition whose bytes are missing. Keys come from the storage
layout (:mod:`app.storage`), the same one the sources read.

A published version is immutable: publishing different bytes under an existing
version is refused unless ``force`` (the same bytes again succeed, so a retried
publish is harmless). Into a local directory every file is written whole and
without following any symlink under the root (:func:`app._files.write_beneath`):
a planted link can neither redirect the write nor become the module.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app._files import read_beneath, write_beneath
from app.catalog._definition import ExtensionDefinition, PromotedPointer
from app.fleet import promotion_notice
from app.settings import Settings
from app.storage import (
    MAX_DEFINITION_BYTES,
    S3Source,
    definition_key,
    module_key,
    promoted_key,
    version_prefix,
)

__all__ = [
    "Candidate",
    "PublishConflict",
    "build_definition",
    "next_pointer",
    "publish",
    "set_candidate",
]


class PublishConflict(ValueError):
    """The version already exists with other bytes; versions are immutable without --force."""


def build_definition(
    wasm: bytes,
    *,
    extension_id: str,
    version: str,
    abi: str,
    tier: str,
    limits: dict[str, Any],
    host_calls: list[str],
    config: dict[str, Any],
    owner: str | None = None,
) -> ExtensionDefinition:
    """A validated definition for ``wasm`` at the conventional key.

    ``owner``: the tenant that owns it (under ``_tenants/{owner}/``); ``None``
    publishes a platform extension every tenant may call.
    """
    body = {
        "id": extension_id,
        "version": version,
        "owner": owner,
        "abi": abi,
        "risk_tier": tier,
        "wasm_blob_ref": {"key": module_key(owner or "", extension_id, version)},
        "sha256": hashlib.sha256(wasm).hexdigest(),
        "limits": limits,
        "host_calls": host_calls,
        "config": config,
    }
    return ExtensionDefinition.from_json(json.dumps(body).encode())


@dataclass(frozen=True, slots=True)
class Candidate:
    """Publish as the promoted version's candidate (``app/rollout``), not promoted."""

    shadow_per_mille: int = 0
    canary_percent: int = 0


def next_pointer(current: bytes | None, version: str, candidate: Candidate | None) -> bytes:
    """The promotion pointer after publishing ``version``.

    Promoting keeps the version it replaces as ``previous`` (what an automatic
    rollback serves) and stamps ``promoted_at`` (the rollback window starts
    there); a candidate leaves the promoted version as it is.
    """
    try:
        old = PromotedPointer.model_validate_json(current) if current else None
    except ValidationError:
        old = None
    if candidate is not None:
        if old is None:
            raise ValueError("nothing is promoted yet: promote a first version, then a candidate")
        pointer = _with_candidate(old, version, candidate)
    else:
        previous = (
            old.version if old and old.version != version else (old.previous if old else None)
        )
        pointer = PromotedPointer(
            version=version,
            previous=previous or None,
            promoted_at=datetime.datetime.now(datetime.UTC),
        )
    return _pointer_bytes(pointer)


def _with_candidate(
    pointer: PromotedPointer, version: str | None, candidate: Candidate
) -> PromotedPointer:
    """``pointer`` with ``version`` as its candidate; ``None`` ends the rollout."""
    if version is None:
        return pointer.model_copy(
            update={"candidate": None, "shadow_per_mille": 0, "canary_percent": 0}
        )
    return pointer.model_copy(
        update={
            "candidate": version,
            "shadow_per_mille": candidate.shadow_per_mille,
            "canary_percent": candidate.canary_percent,
        }
    )


async def set_candidate(
    settings: Settings,
    owner: str,
    extension_id: str,
    version: str | None,
    candidate: Candidate,
) -> PromotedPointer:
    """Rewrite the promotion pointer's rollout options, keeping what is promoted.

    The admin RPC's ``SetRollout`` writes through here. The read-modify-write
    is not atomic against a concurrent ``publish`` of the same extension (the
    storage offers no conditional write here): the last writer wins, as with
    two publishes. The caller tells the fleet (the runtime's own announcement).
    """
    pointer_at = promoted_key(owner, extension_id)
    if settings.s3_endpoint_url:
        source = S3Source(settings)
        try:
            current = await source.read_object(pointer_at, MAX_DEFINITION_BYTES)
            pointer = _with_candidate(_promoted(current), version, candidate)
            await source.put(pointer_at, _pointer_bytes(pointer), "application/json")
        finally:
            await source.close()
        return pointer
    if settings.extensions_dir is None:
        raise ValueError("no S3 endpoint and no extensions directory configured")
    current = read_beneath(settings.extensions_dir, pointer_at, MAX_DEFINITION_BYTES)
    pointer = _with_candidate(_promoted(current), version, candidate)
    write_beneath(settings.extensions_dir, pointer_at, _pointer_bytes(pointer))
    return pointer


def _promoted(current: bytes | None) -> PromotedPointer:
    if current is None:
        raise ValueError("nothing is promoted yet: promote a first version, then a candidate")
    try:
        return PromotedPointer.model_validate_json(current)
    except ValidationError:
        raise ValueError("the promotion pointer in storage is not valid") from None


def _pointer_bytes(pointer: PromotedPointer) -> bytes:
    return pointer.model_dump_json(exclude_none=True, exclude_defaults=True).encode()


async def publish(
    settings: Settings,
    definition: ExtensionDefinition,
    wasm: bytes,
    *,
    promote: bool,
    force: bool = False,
    candidate: Candidate | None = None,
) -> str:
    """Upload to S3 when an endpoint is set, else into the local extensions directory.

    ``promote`` or ``candidate`` also rewrite the promotion pointer. Raises
    :class:`PublishConflict` when the version exists with a different
    definition (and so different module bytes or settings) and not ``force``.
    """
    owner, extension_id, version = definition.owner_key, definition.id, definition.version
    definition_bytes = definition.model_dump_json(indent=2).encode()
    definition_at = definition_key(owner, extension_id, version)
    pointer_at = promoted_key(owner, extension_id)
    repoint = promote or candidate is not None
    where = version_prefix(owner, extension_id, version)
    if settings.s3_endpoint_url:
        source = S3Source(settings)
        try:
            if not force:
                existing = await source.read_object(definition_at, MAX_DEFINITION_BYTES)
                _refuse_replacing(definition, existing, definition_bytes)
            await source.put(definition.wasm_blob_ref.key, wasm, "application/wasm")
            await source.put(definition_at, definition_bytes, "application/json")
            if repoint:
                current = await source.read_object(pointer_at, MAX_DEFINITION_BYTES)
                pointer = next_pointer(current, version, candidate)
                await source.put(pointer_at, pointer, "application/json")
                # Every process of the fleet reloads it within a listing interval.
                await source.put(*promotion_notice(extension_id, owner), "application/json")
        finally:
            await source.close()
        return f"s3://{settings.s3_bucket}/{settings.s3_prefix}{where}"
    if settings.extensions_dir is None:
        raise ValueError("no S3 endpoint and no extensions directory configured")
    root = settings.extensions_dir
    if not force:
        existing = read_beneath(root, definition_at, MAX_DEFINITION_BYTES)
        _refuse_replacing(definition, existing, definition_bytes)
    write_beneath(root, definition.wasm_blob_ref.key, wasm)
    write_beneath(root, definition_at, definition_bytes)
    if repoint:
        current = read_beneath(root, pointer_at, MAX_DEFINITION_BYTES)
        write_beneath(root, pointer_at, next_pointer(current, version, candidate))
    return str(root / where)


def _refuse_replacing(definition: ExtensionDefinition, existing: bytes | None, new: bytes) -> None:
    """A version exists once its definition does; the definition pins the module's sha256."""
    if existing is not None and existing != new:
        raise PublishConflict(
            f"{definition.id} {definition.version} is already published with different "
            "bytes; publish a new version, or pass --force to replace it"
        )
