"""The docs stay true to the code and to each other.

The README is the front page: it stays short enough to read (10 KB), and the
detail lives in docs/. A reader following a link must land on a page and a
heading that exist, and never leave the repository: the docs describe this
code, and an outside page can change under them. The configuration table is
generated from ``app.settings.Settings`` (``make docs``), so it is compared
with a fresh rendering here instead of being reviewed by eye.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import SecretStr

from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_BYTES = 10_000


_FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_AUTOLINK = re.compile(r"<([a-zA-Z][a-zA-Z0-9+.-]*:[^>\s]*)>")
_BARE_URL = re.compile(r"\b(?:https?://|www\.)\S+")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "settings_table", ROOT / "tools" / "settings_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _prose(text: str) -> str:
    """The text outside code: what a renderer turns into links and headings."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_anchor(h) for h in _HEADING.findall(_FENCE.sub("", page.read_text()))}


def _links(page: Path) -> list[str]:
    prose = _prose(page.read_text())
    return _LINK.findall(prose) + _AUTOLINK.findall(prose)


def test_readme_stays_a_front_page() -> None:
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes: move detail into docs/"


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_in_the_repository_and_land(page: Path) -> None:
    broken: list[str] = []
    for target in _links(page):
        if _SCHEME.match(target):
            broken.append(f"{target}: leaves the repository")
            continue
        path, _, fragment = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif fragment and destination.suffix == ".md" and fragment not in _anchors(destination):
            broken.append(f"{target}: no heading #{fragment} in {destination.name}")
    bare = _BARE_URL.findall(_LINK.sub("", _prose(page.read_text())))
    broken += [f"{url}: a bare URL renders as a link; put it in code" for url in bare]
    assert not broken, "\n".join(broken)


def test_the_settings_table_is_current() -> None:
    generator = _load_generator()
    current = generator.DOC.read_text()
    wanted = generator.with_table(current, generator.render_table())
    assert current == wanted, "docs/operations.md's settings table is stale: run `make docs`"


def test_the_settings_table_has_every_setting_and_no_secret_value() -> None:
    cells = [
        [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]
        for row in _load_generator().render_table().splitlines()[2:]
    ]
    rows = {row[0].strip("`"): row[1:] for row in cells}
    prefix = Settings.model_config["env_prefix"]
    assert set(rows) == {f"{prefix}{name}".upper() for name in Settings.model_fields}
    for name, field in Settings.model_fields.items():
        _type, default, dev_default, description = rows[f"{prefix}{name}".upper()]
        assert description, f"{name} has no description in app/settings.py"
        if field.annotation is not None and SecretStr in getattr(field.annotation, "__args__", ()):
            assert (default, dev_default) == ("—", ""), name
    # The dev column comes from the settings validator, not from a copy of it.
    assert rows[f"{prefix}AUTH_ENABLED"][1:3] == ["`true`", "`false`"]
    assert rows[f"{prefix}EXTENSIONS_DIR"][1:3] == ["unset", "`var/extensions`"]


def test_a_stale_table_is_noticed() -> None:
    generator = _load_generator()
    current = generator.DOC.read_text()
    stale = current.replace("`EXTENSIONS_RUNTIME_PORT`", "`EXTENSIONS_RUNTIME_PORT_`", 1)
    assert generator.with_table(stale, generator.render_table()) == current
    with pytest.raises(ValueError, match="markers"):
        generator.with_table("no markers here", generator.render_table())
