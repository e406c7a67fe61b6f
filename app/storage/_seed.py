"""The dev loop's own extensions directory, seeded from the examples.

``serve --dev`` and ``publish`` (with no storage configured) use
``var/extensions/``, outside the tracked tree, so publishing while developing
never dirties the repository. It starts as a copy of ``examples/extensions/``;
each start adds what is missing (a new example, a new version) and never
overwrites what an author published there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from app._files import write_atomically
from app.storage._layout import DEFINITION_FILE, PROMOTED_FILE

__all__ = ["seed_directory"]


def seed_directory(examples: Path, target: Path) -> int:
    """Copy every ``{owner?}/{id}/{version}`` of ``examples`` missing from ``target``.

    Each version lands whole or not at all (copied aside, then renamed into
    place), so a server reading ``target`` meanwhile never sees half of one, and
    two processes seeding at once both succeed. Returns how many were copied.
    """
    copied = 0
    target.mkdir(parents=True, exist_ok=True)
    for definition in sorted(examples.rglob(DEFINITION_FILE)):
        version_dir = definition.parent
        relative = version_dir.relative_to(examples)
        destination = target / relative
        if destination.exists():
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".seed-", dir=destination.parent))
        try:
            shutil.copytree(version_dir, staging, dirs_exist_ok=True)
            os.rename(staging, destination)
            copied += 1
        except OSError:
            if not destination.exists():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        pointer = version_dir.parent / PROMOTED_FILE
        if pointer.is_file() and not (destination.parent / PROMOTED_FILE).exists():
            write_atomically(destination.parent / PROMOTED_FILE, pointer.read_bytes())
    return copied
