"""``extensions-runtime publish``: upload a module and its definition.

Where to: the S3 bucket when an endpoint is configured, else the configured
extensions directory, else ``var/extensions`` (what ``serve --dev`` reads,
seeded from the examples first). How: :func:`app.catalog.publish`, the same
writer the tests use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from app.settings import DEV_EXTENSIONS_DIR, EXAMPLES_DIR, Settings
from app.telemetry import configure_logging

__all__ = ["register", "run"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    publish = commands.add_parser(
        "publish",
        help="upload a module and its definition (S3, or a local directory: see --dir)",
    )
    publish.add_argument("module", type=Path)
    publish.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="extensions directory to write to (default: the S3 bucket when "
        "EXTENSIONS_RUNTIME_S3_ENDPOINT_URL is set, else EXTENSIONS_RUNTIME_EXTENSIONS_DIR, "
        "else var/extensions, which serve --dev reads)",
    )
    publish.add_argument("--id", required=True, dest="extension_id")
    publish.add_argument("--version", required=True)
    publish.add_argument(
        "--abi",
        choices=["raw", "wasi-stdio", "component"],
        help="(default: component for a component, else wasi-stdio)",
    )
    publish.add_argument("--tier", default="pure")
    publish.add_argument("--limits", default="{}", help="declared limits as JSON")
    publish.add_argument("--host-call", action="append", default=[], dest="host_calls")
    publish.add_argument("--config", default="{}", help="static config as JSON")
    publish.add_argument("--promote", action="store_true", help="make it the promoted version")
    publish.add_argument(
        "--tenant",
        default=None,
        help="the tenant that owns it (only that tenant may call it); omit for a platform one",
    )
    publish.add_argument(
        "--force",
        action="store_true",
        help="replace an existing version whose bytes differ (versions are immutable otherwise)",
    )
    publish.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build the definition, pick the destination, publish, say where."""
    from app.catalog import build_definition, publish
    from app.sandbox import default_abi
    from app.storage import seed_directory

    configure_logging("warning", "console")
    try:
        wasm = args.module.read_bytes()
        definition = build_definition(
            wasm,
            extension_id=args.extension_id,
            version=args.version,
            abi=args.abi or default_abi(wasm),
            tier=args.tier,
            limits=json.loads(args.limits),
            host_calls=args.host_calls,
            config=json.loads(args.config),
            owner=args.tenant,
        )
        settings = Settings()
        if args.dir is not None:
            settings = settings.model_copy(
                update={"extensions_dir": args.dir, "s3_endpoint_url": None}
            )
        elif settings.extensions_dir is None and not settings.s3_endpoint_url:
            settings = settings.model_copy(update={"extensions_dir": DEV_EXTENSIONS_DIR})
        if not settings.s3_endpoint_url and settings.extensions_dir == DEV_EXTENSIONS_DIR:
            seed_directory(EXAMPLES_DIR, DEV_EXTENSIONS_DIR)
        where = asyncio.run(
            publish(settings, definition, wasm, promote=args.promote, force=args.force)
        )
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"extensions-runtime publish: {exc}\n")
        return 2
    sys.stdout.write(f"published {definition.id} {definition.version} to {where}\n")
    return 0
