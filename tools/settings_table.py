"""Writes the configuration table of docs/operations.md from ``app.settings.Settings``.

The settings class is the only place a knob is defined, with its type, bounds,
default and description. A table typed by hand drifted from it (the README's
listed a dozen of more than ninety settings), so this one is rendered from the
class: ``make docs`` rewrites it between the two marker comments, and
``tests/test_docs.py`` fails when the committed table differs from what this
renders. ``--check`` does the same comparison from the command line.

Dev defaults come from the settings validator itself (not from a copy of
``DEV_DEFAULTS``), so the ``--dev`` column says what ``serve --dev`` really
changes. Secrets never show a default.
"""

from __future__ import annotations

import argparse
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

import app.settings as settings_module
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "operations.md"
BEGIN = "<!-- settings-table:begin (generated from app/settings.py by `make docs`) -->"
END = "<!-- settings-table:end -->"
_REPO = Path(settings_module.__file__).resolve().parent.parent
"""Where the settings module lives: dev paths are shown relative to it."""


def _env_name(name: str) -> str:
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return f"{prefix}{name}".upper()


def _is_secret(field: FieldInfo) -> bool:
    return SecretStr in _members(field.annotation)


def _members(annotation: Any) -> tuple[Any, ...]:
    """The arms of a union (``X | None`` -> ``(X, NoneType)``), else the annotation."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(str(arg) for arg in typing.get_args(annotation))
    if origin is list:
        return "list (JSON, or comma-separated)"
    if origin is dict:
        _, value = typing.get_args(annotation)
        if isinstance(value, type) and issubclass(value, BaseModel):
            keys = ", ".join(value.model_fields)
            return f"JSON object of {{{keys}}}"
        return "JSON object"
    simple = {bool: "bool", int: "int", float: "float", str: "string", Path: "path"}
    if annotation is SecretStr:
        return "secret"
    return simple.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _bounds(field: FieldInfo) -> list[str]:
    found: list[str] = []
    for item in field.metadata:
        if isinstance(item, Ge):
            found.append(f"≥ {_number(item.ge)}")
        elif isinstance(item, Gt):
            found.append(f"> {_number(item.gt)}")
        elif isinstance(item, Le):
            found.append(f"≤ {_number(item.le)}")
        elif isinstance(item, Lt):
            found.append(f"< {_number(item.lt)}")
        elif getattr(item, "pattern", None):
            found.append(f"matching `{item.pattern}`")
    return found


def field_type(field: FieldInfo) -> str:
    """The type as a reader sets it in the environment, with its bounds."""
    arms = [arm for arm in _members(field.annotation) if arm is not type(None)]
    text = " \\| ".join(_type_name(arm) for arm in arms)
    bounds = _bounds(field)
    return f"{text}, {' and '.join(bounds)}" if bounds else text


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 10_000 else str(value)


def _size(name: str, value: Any) -> str:
    """A byte count's binary size, for the ``*_bytes`` settings (``4 MiB``)."""
    if not name.endswith("_bytes") or not isinstance(value, int) or value < 1024:
        return ""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value % scale == 0:
            return f" ({value // scale} {unit})"
    return ""


def env_value(name: str, value: Any) -> str:
    """``value`` as it is written in the environment, in code format."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        shown = value.relative_to(_REPO) if value.is_relative_to(_REPO) else value
        return f"`{shown.as_posix()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, list | dict) and not value:
        return "empty"
    return f"`{value}`{_size(name, value)}"


def _default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return None if field.default is PydanticUndefined else field.default


def _dev_defaults() -> dict[str, Any]:
    """What the settings validator adds when ``dev`` is on and nothing else is set."""
    changed: dict[str, Any] = Settings._dev_defaults({"dev": True})  # type: ignore[operator]
    changed.pop("dev", None)
    return changed


_URL = re.compile(r"(?<!`)\bhttps?://[^\s`]+")


def _cell(text: str) -> str:
    """One table cell: one line, pipes escaped, URLs as code (examples, not links)."""
    text = _URL.sub(lambda m: f"`{m.group(0)}`", " ".join(text.split()))
    return text.replace("|", "\\|")


def render_table() -> str:
    """The Markdown table of every setting, in the order the class defines them."""
    dev = _dev_defaults()
    lines = [
        "| variable | type | default | with `--dev` | what it is for |",
        "|---|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        secret = _is_secret(field)
        default = "—" if secret else env_value(name, _default(field))
        dev_default = env_value(name, dev[name]) if name in dev and not secret else ""
        lines.append(
            f"| `{_env_name(name)}` | {field_type(field)} | {default} | {dev_default} "
            f"| {_cell(field.description or '')} |"
        )
    return "\n".join(lines) + "\n"


def with_table(document: str, table: str) -> str:
    """``document`` with the text between the markers replaced by ``table``."""
    start = document.find(BEGIN)
    end = document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{DOC.relative_to(ROOT)} needs the markers {BEGIN!r} and {END!r}")
    return document[: start + len(BEGIN)] + "\n" + table + document[end:]


def main(argv: list[str] | None = None) -> int:
    """Rewrite the table; with ``--check``, only say whether it is current (exit 1 if not)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if the table is stale")
    args = parser.parse_args(argv)
    current = DOC.read_text()
    wanted = with_table(current, render_table())
    if args.check:
        if wanted != current:
            sys.stderr.write(f"{DOC.relative_to(ROOT)}: settings table is stale: run make docs\n")
            return 1
        return 0
    if wanted != current:
        DOC.write_text(wanted)
        sys.stdout.write(f"rewrote the settings table in {DOC.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
