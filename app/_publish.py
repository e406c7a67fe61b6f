"""``extensions-runtime publish``: upload a module the way Transformation does.

Writes the blob, then the definition, then (with ``--promote``) the pointer, in
that order, so a reader never sees a definition whose bytes are missing.

A published version is immutable: publishing different bytes under an existing
version is refused unless ``force`` (the same bytes again succeed, so a retried
publish is harmless). Into a local directory every file is written through an
unpredictable temp name opened ``O_EXCL|O_NOFOLLOW`` inside its own directory,
fsynced and renamed into place, and no directory or file under the root may be
a symlink: a planted link can neither redirect the write nor become the module.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from app.catalog import ExtensionDefinition
from app.settings import Settings
from app.storage import S3Source, owner_prefix
from app.storage.source import MAX_DEFINITION_BYTES

__all__ = ["PublishConflict", "UnsafePath", "build_definition", "publish"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PublishConflict(ValueError):
    """The version already exists with other bytes; versions are immutable without --force."""


class UnsafePath(OSError):
    """A path under the publish root is a symlink or not what it must be."""


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
    settings: Settings,
    definition: ExtensionDefinition,
    wasm: bytes,
    *,
    promote: bool,
    force: bool = False,
) -> str:
    """Upload to S3 when an endpoint is set, else into the local extensions directory.

    Raises :class:`PublishConflict` when the version exists with a different
    definition (and so different module bytes or settings) and not ``force``.
    """
    definition_bytes = definition.model_dump_json(indent=2).encode()
    home = f"{owner_prefix(definition.owner_key)}{definition.id}"
    prefix = f"{home}/{definition.version}"
    definition_key = f"{prefix}/extension.json"
    pointer = json.dumps({"version": definition.version}).encode()
    if settings.s3_endpoint_url:
        source = S3Source(settings)
        try:
            if not force:
                existing = await source.read_object(definition_key, MAX_DEFINITION_BYTES)
                _refuse_replacing(definition, existing, definition_bytes)
            await source.put(definition.wasm_blob_ref.key, wasm, "application/wasm")
            await source.put(definition_key, definition_bytes, "application/json")
            if promote:
                await source.put(f"{home}/promoted.json", pointer, "application/json")
        finally:
            await source.close()
        return f"s3://{settings.s3_bucket}/{settings.s3_prefix}{prefix}/"
    if settings.extensions_dir is None:
        raise ValueError("no S3 endpoint and no extensions directory configured")
    root = settings.extensions_dir
    if not force:
        existing = _read_file_safely(root, definition_key, MAX_DEFINITION_BYTES)
        _refuse_replacing(definition, existing, definition_bytes)
    _write_file_safely(root, definition.wasm_blob_ref.key, wasm)
    _write_file_safely(root, definition_key, definition_bytes)
    if promote:
        _write_file_safely(root, f"{home}/promoted.json", pointer)
    return str(root / prefix)


def _refuse_replacing(definition: ExtensionDefinition, existing: bytes | None, new: bytes) -> None:
    """A version exists once its definition does; the definition pins the module's sha256."""
    if existing is not None and existing != new:
        raise PublishConflict(
            f"{definition.id} {definition.version} is already published with different "
            "bytes; publish a new version, or pass --force to replace it"
        )


def _parts(relative: str) -> list[str]:
    """The path's components; anything that could step out of the root is refused."""
    parts = relative.split("/")
    if any(part in {"", ".", ".."} or "\0" in part for part in parts):
        raise UnsafePath(f"refusing path {relative[:200]!r}")
    return parts


def _open_dir(root: Path, parts: list[str], *, create: bool) -> int | None:
    """An fd of ``root/parts...`` reached without following any symlink under ``root``.

    ``None`` when a directory is missing and not ``create``.
    """
    if create:
        root.mkdir(parents=True, exist_ok=True)  # the root is the operator's choice
    elif not root.is_dir():
        return None
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    walked = root
    try:
        for part in parts:
            walked = walked / part
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if create:
                    raise
                os.close(fd)
                return None
            except OSError as exc:
                if exc.errno in {errno.ELOOP, errno.ENOTDIR}:
                    raise UnsafePath(f"{walked} is a symlink or not a directory") from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_regular(dir_fd: int, name: str, shown: Path) -> bool:
    """Whether ``name`` exists; a symlink or anything but a regular file is refused."""
    try:
        mode = os.lstat(name, dir_fd=dir_fd).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(mode):
        raise UnsafePath(f"{shown} is a symlink or not a regular file")
    return True


def _read_file_safely(root: Path, relative: str, max_bytes: int) -> bytes | None:
    """At most ``max_bytes + 1`` of the file's bytes (so an oversized file reads as
    different); ``None`` when it (or a directory above it) does not exist."""
    *dirs, name = _parts(relative)
    fd = _open_dir(root, dirs, create=False)
    if fd is None:
        return None
    try:
        if not _check_regular(fd, name, root / relative):
            return None
        file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        with os.fdopen(file_fd, "rb") as file:
            return file.read(max_bytes + 1)
    finally:
        os.close(fd)


def _write_file_safely(root: Path, relative: str, data: bytes, mode: int = 0o644) -> None:
    """Atomically put ``data`` at ``root/relative`` without following symlinks.

    Missing directories are created; the bytes go to a fresh, unpredictable temp
    name in the same directory (``O_CREAT|O_EXCL|O_NOFOLLOW``: it cannot be a
    planted file or link), are fsynced, and are renamed over the final name,
    which is then durable once the directory is fsynced too.
    """
    *dirs, name = _parts(relative)
    fd = _open_dir(root, dirs, create=True)
    assert fd is not None  # created on the way
    try:
        _check_regular(fd, name, root / relative)
        temp = f".{name}.{secrets.token_hex(12)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        file_fd = os.open(temp, flags, mode, dir_fd=fd)
        try:
            with os.fdopen(file_fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=fd)
            raise
        os.fsync(fd)
    finally:
        os.close(fd)
