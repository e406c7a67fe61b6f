"""Build the example extensions from ``examples/src`` and refresh their manifests.

Run from anywhere with the project's venv (``make examples`` does this)::

    .venv/bin/python examples/build.py                 # rebuild every module in place
    .venv/bin/python examples/build.py --out-dir DIR   # build DIR/{id}.wasm, change nothing else
    .venv/bin/python examples/build.py hello echo      # only these examples

In-place builds write ``examples/extensions/{id}/{version}/module.wasm`` and
rewrite the ``sha256`` of the ``extension.json`` next to it. C is compiled with
Debian's clang 14 for ``wasm32-wasi`` (``make guest-toolchain`` installs it);
WAT is assembled with ``wasmtime.wat2wasm`` from the venv. Components (Python,
JavaScript, C) are built by ``extensions-runtime build`` (``app.authoring``),
the command authors run; their ``examples/src/{id}/built.json`` records the
digest of the sources and of the module built from them, because Python and
JavaScript builds are not byte-for-byte reproducible (the snapshot differs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import wasmtime

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # app.authoring builds components
from app.authoring import BuildError, Language
from app.authoring import build as build_component

EXAMPLES = Path(__file__).resolve().parent
SRC = EXAMPLES / "src"
EXTENSIONS = EXAMPLES / "extensions"
ROOT = EXAMPLES.parent
WAT2WASM = (
    ".venv/bin/python -c 'import sys, wasmtime;"
    " sys.stdout.buffer.write(wasmtime.wat2wasm(open(sys.argv[1]).read()))'"
)

# A wasi-stdio command: wasi-libc's crt1 provides _start. The stack goes first in
# memory so an overflow traps (address below 0) instead of overwriting static data.
C_WASI_COMMAND = [
    "--target=wasm32-wasi",
    "-Os",
    "-Wall",
    "-Wextra",
    "-Wl,--stack-first",
    "-Wl,-z,stack-size=65536",
    "-Wl,--strip-all",
]
# A raw-ABI module: freestanding, no libc and therefore no WASI imports (the raw
# ABI only provides the `ameide` host functions). Exports come from the source's
# export_name attributes; a 16 KiB stack keeps the whole module in one page.
C_RAW = [
    "--target=wasm32",
    "-nostdlib",
    "-ffreestanding",
    "-Os",
    "-Wall",
    "-Wextra",
    "-Wl,--no-entry",
    "-Wl,--stack-first",
    "-Wl,-z,stack-size=16384",
    "-Wl,--strip-all",
]

TOOLCHAIN_HINT = (
    "run `make guest-toolchain` (Debian: clang lld wasi-libc libclang-rt-14-dev-wasm32)"
)


@dataclass(frozen=True)
class Example:
    id: str
    version: str
    source: str
    """File under ``examples/src/{id}/``."""
    clang_flags: tuple[str, ...] = ()
    """Empty for WAT sources and components."""
    component: str | None = None
    """The language of a component (``python``, ``js``, ``c``); built from its directory."""

    @property
    def source_path(self) -> Path:
        return SRC / self.id / self.source

    @property
    def module_path(self) -> Path:
        return EXTENSIONS / self.id / self.version / "module.wasm"

    @property
    def manifest_path(self) -> Path:
        return EXTENSIONS / self.id / self.version / "extension.json"

    @property
    def is_c(self) -> bool:
        return bool(self.clang_flags)

    @property
    def record_path(self) -> Path:
        return self.source_path.parent / "built.json"

    def command_line(self) -> str:
        """The exact build command, run from the repository root (as in the READMEs)."""
        src = self.source_path.relative_to(ROOT)
        out = self.module_path.relative_to(ROOT)
        if self.component:
            return f"extensions-runtime build {src.parent} -o {out}"
        if self.is_c:
            return f"clang {' '.join(self.clang_flags)} -o {out} {src}"
        return f"{WAT2WASM} {src} > {out}"


ALL = (
    Example("hello", "1.0.0", "hello.c", tuple(C_WASI_COMMAND)),
    Example("echo", "1.0.0", "echo.wat"),
    Example("wordcount", "1.0.0", "wordcount.c", tuple(C_RAW)),
    Example("spin", "1.0.0", "spin.wat"),
    Example("enrich", "1.0.0", "enrich.wat"),
    Example("hello-py", "1.0.0", "app.py", component="python"),
    Example("hello-js", "1.0.0", "hello.js", component="js"),
    Example("hello-c", "1.0.0", "hello.c", component="c"),
    Example("enrich-py", "1.0.0", "app.py", component="python"),
)


def source_digest(example: Example) -> str:
    """sha256 over a component's inputs: its directory, the headers it shares, the world."""
    from app.authoring._build import C_INCLUDE, WIT

    files = sorted(
        p for p in example.source_path.parent.iterdir() if p.is_file() and p.name != "built.json"
    )
    files += sorted(WIT.glob("*.wit"))
    if example.component == "c":
        files += [C_INCLUDE / "extension.h", SRC / "hello" / "json_name.h"]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


class ToolchainMissing(RuntimeError):
    """clang cannot build for wasm32-wasi here."""


def clang() -> str:
    """The clang to use: ``$CLANG`` or ``clang`` on PATH."""
    found = shutil.which(os.environ.get("CLANG", "clang"))
    if found is None:
        raise ToolchainMissing(f"clang is not installed: {TOOLCHAIN_HINT}")
    return found


def check_toolchain() -> str:
    """clang's path, after proving it links both kinds of C example; else ToolchainMissing."""
    compiler = clang()
    probe = "int main(void) { return 0; }\n"
    with tempfile.TemporaryDirectory(prefix="guest-toolchain-") as tmp:
        source = Path(tmp, "probe.c")
        source.write_text(probe)
        for flags in (C_WASI_COMMAND, C_RAW):
            result = subprocess.run(
                [compiler, *flags, "-o", str(Path(tmp, "probe.wasm")), str(source)],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                lines = result.stderr.strip().splitlines()
                detail = next(
                    (line for line in lines if "error" in line), lines[0] if lines else ""
                )
                raise ToolchainMissing(
                    f"clang cannot build for {flags[0].split('=')[1]} ({detail.strip()}): "
                    f"{TOOLCHAIN_HINT}"
                )
    return compiler


def build(example: Example, out: Path, compiler: str | None = None) -> bytes:
    """Build ``example`` into ``out`` and return the module bytes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if example.component:
        build_component(example.source_path.parent, out, language=Language(example.component))
    elif example.is_c:
        command = [compiler or clang(), *example.clang_flags, "-o", str(out)]
        subprocess.run([*command, str(example.source_path)], check=True)
        out.chmod(0o644)  # wasm-ld marks its output executable; a module is data
    else:
        out.write_bytes(bytes(wasmtime.wat2wasm(example.source_path.read_text())))
    return out.read_bytes()


def update_manifest(example: Example, wasm: bytes) -> bool:
    """Rewrite the manifest's sha256 for ``wasm``; True if it changed."""
    manifest = json.loads(example.manifest_path.read_text())
    digest = hashlib.sha256(wasm).hexdigest()
    if manifest.get("sha256") == digest:
        return False
    manifest["sha256"] = digest
    example.manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ids", nargs="*", help="examples to build (default: all)")
    parser.add_argument("--out-dir", type=Path, help="build DIR/{id}.wasm; leave examples alone")
    args = parser.parse_args(argv)

    known = {example.id: example for example in ALL}
    unknown = sorted(set(args.ids) - set(known))
    if unknown:
        parser.error(f"unknown example(s): {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = [known[i] for i in args.ids] if args.ids else list(ALL)

    compiler = None
    if any(example.is_c for example in chosen):
        try:
            compiler = check_toolchain()
        except ToolchainMissing as missing:
            sys.stderr.write(f"examples/build.py: {missing}\n")
            return 2

    for example in chosen:
        out = args.out_dir / f"{example.id}.wasm" if args.out_dir else example.module_path
        sys.stdout.write(f"{example.id} {example.version}: building\n")
        sys.stdout.flush()
        try:
            wasm = build(example, out, compiler)
        except (BuildError, subprocess.CalledProcessError) as exc:
            sys.stderr.write(f"examples/build.py: {example.id}: {exc}\n")
            return 1
        note = ""
        if args.out_dir is None:
            note = " (manifest sha256 updated)" if update_manifest(example, wasm) else ""
            if example.component:
                record = {
                    "sources_sha256": source_digest(example),
                    "module_sha256": hashlib.sha256(wasm).hexdigest(),
                }
                example.record_path.write_text(json.dumps(record, indent=2) + "\n")
        digest = hashlib.sha256(wasm).hexdigest()
        sys.stdout.write(
            f"{example.id} {example.version}: {len(wasm)} bytes sha256 {digest}{note}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
