"""The parser and the dispatch: each subcommand module adds its parser and its ``run``.

A subcommand module keeps its top-level imports light and imports the heavy
parts (wasmtime, storage clients, servers) inside ``run``, so every command
starts without paying for the others.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pydantic import ValidationError

import app
from app.cli import _build, _invoke, _new, _publish, _serve
from app.telemetry import configure_logging, get_logger

__all__ = ["main"]

_DESCRIPTION = """Command line: ``extensions-runtime serve|new|build|invoke|publish``.

Exit statuses follow one rule everywhere: 0 success, 1 the work failed,
2 the command line or its inputs were unusable."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="extensions-runtime", description=_DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {app.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in (_serve, _new, _build, _invoke, _publish):
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``extensions-runtime`` console script."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except ValidationError as exc:
        configure_logging()
        get_logger("app.cli").error("cli.invalid_settings", errors=exc.errors(include_url=False))
        return 2
    return status
