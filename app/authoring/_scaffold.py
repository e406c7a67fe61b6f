"""``extensions-runtime new``: an extension directory that builds and runs as it is.

What it writes: the handler in the chosen language (from ``templates/``), a
copy of the WIT world it is built against (``wit/``, so the directory builds
the same after the repository's world gains a minor version), ``extension.json``
with limits that fit the language's runtime, ``input.json`` and a README with
the next commands.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from app.authoring._build import C_INCLUDE, WIT
from app.authoring._languages import Language

__all__ = ["scaffold"]

_TEMPLATES = Path(__file__).resolve().parent / "templates"
_SOURCES = {Language.PYTHON: ("app.py",), Language.JS: ("handler.js",), Language.C: ("handler.c",)}
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")

# Fuel and memory each language's runtime needs for a small JSON handler, with
# room: CPython starts from a ~20 MB snapshot and spends ~250k fuel a call,
# StarlingMonkey ~1.1M, C a few thousand.
_LIMITS = {
    Language.PYTHON: {"fuel": 5_000_000, "memory_bytes": 32 << 20},
    Language.JS: {"fuel": 20_000_000, "memory_bytes": 32 << 20},
    Language.C: {"fuel": 1_000_000, "memory_bytes": 16 << 20},
}

_README = """# {name}

An extension in {language}: a WebAssembly component of the world
`ameide:extension/extension@0.1.0` (`wit/`). Edit `{source}`, then:

```sh
extensions-runtime build {name}                    # -> {name}/module.wasm
extensions-runtime invoke {name}                   # runs input.json as the service would
extensions-runtime invoke {name} --input '{{"name": "Ada"}}'
extensions-runtime publish {name} --promote        # id, version, limits from extension.json
```

`extension.json` holds the definition it is published with: limits, tier,
host calls and `config` (what `host.config()` returns). The contract, the
limits and what each error means: docs/authoring.md.
"""


def scaffold(name: str, language: Language, parent: Path) -> Path:
    """Create ``parent/name`` for ``language``; ``ValueError`` if it exists or the name is bad."""
    if not _NAME.match(name):
        raise ValueError(
            f"{name!r}: an extension id is lowercase letters, digits and '-', "
            "starting with a letter (at most 63)"
        )
    directory = parent / name
    if directory.exists():
        raise ValueError(f"{directory} already exists")
    directory.mkdir(parents=True)
    for source in _SOURCES[language]:
        text = (_TEMPLATES / language.value / source).read_text()
        (directory / source).write_text(text.replace("{{name}}", name))
    if language is Language.C:
        shutil.copyfile(C_INCLUDE / "extension.h", directory / "extension.h")
    shutil.copytree(WIT, directory / "wit")
    definition = {
        "id": name,
        "version": "0.1.0",
        "abi": "component",
        "risk_tier": "pure",
        "limits": {**_LIMITS[language], "timeout_ms": 1000},
        "host_calls": [],
        "config": {"greeting": "Hello"},
    }
    (directory / "extension.json").write_text(json.dumps(definition, indent=2) + "\n")
    (directory / "input.json").write_text('{"name": "Ada"}\n')
    readme = _README.format(name=name, language=_LABELS[language], source=_SOURCES[language][0])
    (directory / "README.md").write_text(readme)
    return directory


_LABELS = {Language.PYTHON: "Python", Language.JS: "JavaScript", Language.C: "C"}
