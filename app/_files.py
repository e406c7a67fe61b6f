"""Files written whole or not at all, and never through a symlink.

Every file the service writes (a published module or definition, a promotion
pointer, a precompiled artifact, a seeded pointer) is a file another process
may read at any moment, so it goes through one helper: the bytes go to a
fresh, unpredictable temp name in the same directory, opened
``O_CREAT|O_EXCL|O_NOFOLLOW`` (it cannot be a planted file or link), are
fsynced, and are renamed over the final name; the directory is fsynced last,
so the rename is durable too. A reader sees the old file or the new one.

Under a root that others can write to (``publish`` into an extensions
directory), :func:`write_beneath` and :func:`read_beneath` also walk every
directory from the root with ``O_NOFOLLOW``, so no symlink under the root can
redirect a write or stand in for what is read.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

__all__ = ["UnsafePath", "read_beneath", "write_atomically", "write_beneath"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(OSError):
    """A path under the root is a symlink or not what it must be."""


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Put ``data`` at ``path`` (whose directory exists) whole, as described above."""
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _replace(fd, path.name, data, mode)
    finally:
        os.close(fd)


def write_beneath(root: Path, relative: str, data: bytes, mode: int = 0o644) -> None:
    """Put ``data`` at ``root/relative`` whole, creating missing directories and
    following no symlink under ``root``; an existing symlink or non-file at the
    final name is refused (:class:`UnsafePath`)."""
    *dirs, name = _parts(relative)
    fd = _open_dir(root, dirs, create=True)
    assert fd is not None  # created on the way
    try:
        _check_regular(fd, name, root / relative)
        _replace(fd, name, data, mode)
    finally:
        os.close(fd)


def read_beneath(root: Path, relative: str, max_bytes: int) -> bytes | None:
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


def _replace(dir_fd: int, name: str, data: bytes, mode: int) -> None:
    temp = f".{name}.{secrets.token_hex(12)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    file_fd = os.open(temp, flags, mode, dir_fd=dir_fd)
    try:
        with os.fdopen(file_fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)


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
