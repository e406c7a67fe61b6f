"""The authoring languages, and how a directory says which one it is written in."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

__all__ = ["Language", "detect", "js_entry"]


class Language(StrEnum):
    PYTHON = "python"
    JS = "js"
    C = "c"


def js_entry(directory: Path) -> Path | None:
    """The JavaScript module to build: ``handler.js``, else the only ``.js`` file."""
    if (directory / "handler.js").is_file():
        return directory / "handler.js"
    found = sorted(directory.glob("*.js"))
    return found[0] if len(found) == 1 else None


def detect(directory: Path) -> Language:
    """The language of an extension directory, from the sources it holds.

    ``app.py`` is Python (componentize-py builds the module named ``app``), one
    JavaScript module is JavaScript, and C files are C. Anything else, or more
    than one of these, is a ``ValueError`` naming what was found.
    """
    found = []
    if (directory / "app.py").is_file():
        found.append(Language.PYTHON)
    if js_entry(directory) is not None:
        found.append(Language.JS)
    if any(directory.glob("*.c")):
        found.append(Language.C)
    if len(found) != 1:
        what = ", ".join(found) if found else "no app.py, single .js file or .c files"
        raise ValueError(f"{directory}: cannot tell the language ({what}); pass --lang")
    return found[0]
