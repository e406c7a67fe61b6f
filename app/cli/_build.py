"""``extensions-runtime build DIR``: the component, with the toolchain DIR's language needs."""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

__all__ = ["register", "run"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    build = commands.add_parser("build", help="build an extension directory into a component")
    build.add_argument("directory", type=Path, nargs="?", default=Path())
    build.add_argument(
        "-o", "--out", type=Path, help="where to write it (default: DIR/module.wasm)"
    )
    build.add_argument("--lang", choices=["python", "js", "c"], help="(default: from the sources)")
    build.add_argument("-v", "--verbose", action="store_true", help="print each command")
    build.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from app.authoring import BuildError, Language, build

    language = Language(args.lang) if args.lang else None
    started = time.monotonic()
    sys.stderr.write(f"building {args.directory} (this takes seconds for Python and JS)\n")
    try:
        out = build(args.directory, args.out, language=language, echo=args.verbose)
    except BuildError as exc:
        sys.stderr.write(f"extensions-runtime build: {exc}\n")
        return 1
    wasm = out.read_bytes()
    sys.stdout.write(
        f"built {out}: {len(wasm)} bytes, sha256 {hashlib.sha256(wasm).hexdigest()}"
        f" in {time.monotonic() - started:.1f} s\n"
    )
    return 0
