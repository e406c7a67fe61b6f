"""``extensions-runtime publish``: upload a module the way Transformation does.

Writes the blob, then the definition, then (with ``--promote``) the pointer, in
that order, so a reader never sees a definition whose bytes are missing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from app.catalog import ExtensionDefinition
from app.settings import Settings
from app.storage import S3Source, owner_prefix


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
        "wasm_blob_ref": {
            "key": f"{owner_prefix(owner or '')}{extension_id}/{version}/module.wasm"
        },
        "sha256": hashlib.sha256(wasm).hexdigest(),
        "limits": limits,
        "host_calls": host_calls,
        "config": config,
    }
    return ExtensionDefinition.from_json(json.dumps(body).encode())


async def publish(
    settings: Settings, definition: ExtensionDefinition, wasm: bytes, *, promote: bool
) -> str:
    """Upload to S3 when an endpoint is set, else into the local extensions directory."""
    definition_bytes = definition.model_dump_json(indent=2).encode()
    home = f"{owner_prefix(definition.owner_key)}{definition.id}"
    prefix = f"{home}/{definition.version}"
    pointer = json.dumps({"version": definition.version}).encode()
    if settings.s3_endpoint_url:
        source = S3Source(settings)
        try:
            await source.put(definition.wasm_blob_ref.key, wasm, "application/wasm")
            await source.put(f"{prefix}/extension.json", definition_bytes, "application/json")
            if promote:
                await source.put(f"{home}/promoted.json", pointer, "application/json")
        finally:
            await source.close()
        return f"s3://{settings.s3_bucket}/{settings.s3_prefix}{prefix}/"
    if settings.extensions_dir is None:
        raise ValueError("no S3 endpoint and no extensions directory configured")
    root = settings.extensions_dir
    (root / prefix).mkdir(parents=True, exist_ok=True)
    _atomic_write(root / definition.wasm_blob_ref.key, wasm)
    _atomic_write(root / prefix / "extension.json", definition_bytes)
    if promote:
        _atomic_write(root / home / "promoted.json", pointer)
    return str(root / prefix)


def _atomic_write(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(data)
    temp.replace(path)
