"""Command line: ``extensions-runtime serve|invoke``.

Exit statuses follow one rule everywhere: 0 success, 1 the work failed,
2 the command line or its inputs were unusable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from app.settings import Settings
from app.telemetry import configure_logging, get_logger

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples" / "extensions"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="extensions-runtime", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the RPC on one port")
    serve.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port to bind (default 8080)")
    serve.add_argument(
        "--server",
        choices=["pyvoy", "uvicorn", "hypercorn"],
        default=None,
        help="ASGI server; pyvoy is the only one answering all four protocols",
    )
    serve.add_argument(
        "--dev",
        action="store_true",
        help="embedded default: examples/extensions, relaxed auth, debug page",
    )
    return parser


def _serve(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    for name in ("host", "port", "server"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.dev:
        overrides["dev"] = True
        overrides.setdefault("log_format", "console")
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if settings.dev and settings.extensions_dir is None:
        settings = settings.model_copy(update={"extensions_dir": EXAMPLES_DIR})
    configure_logging(settings.log_level, settings.log_format)
    from app._serve import serve

    return serve(settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``extensions-runtime`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
    except ValidationError as exc:
        configure_logging()
        get_logger("app.cli").error("cli.invalid_settings", errors=exc.errors(include_url=False))
        return 2
    parser.error(f"unknown command {args.command}")
    return 2  # pragma: no cover - parser.error exits


if __name__ == "__main__":
    sys.exit(main())
