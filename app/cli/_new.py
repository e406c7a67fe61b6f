"""``extensions-runtime new NAME --lang python|js|c``: scaffold an extension directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register", "run"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    new = commands.add_parser("new", help="scaffold an extension (a component) in a new directory")
    new.add_argument("name", help="the extension id, also the directory's name")
    new.add_argument("--lang", choices=["python", "js", "c"], required=True)
    new.add_argument("--parent", type=Path, default=Path(), help="where to create it (default: .)")
    new.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from app.authoring import Language, scaffold

    try:
        directory = scaffold(args.name, Language(args.lang), args.parent)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"extensions-runtime new: {exc}\n")
        return 2
    sys.stdout.write(
        f"created {directory}\nnext: extensions-runtime build {directory}"
        f" && extensions-runtime invoke {directory}\n"
    )
    return 0
