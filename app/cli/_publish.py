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
    publish.add_argument(
        "module",
        type=Path,
        help="a .wasm module, or an extension directory (`new`, `build`) whose extension.json"
        " gives the id, version, abi, tier, limits, host calls and config (flags override)",
    )
    publish.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="extensions directory to write to (default: the S3 bucket when "
        "EXTENSIONS_RUNTIME_S3_ENDPOINT_URL is set, else EXTENSIONS_RUNTIME_EXTENSIONS_DIR, "
        "else var/extensions, which serve --dev reads)",
    )
    publish.add_argument("--id", dest="extension_id", help="(required for a .wasm module)")
    publish.add_argument("--version", help="(required for a .wasm module)")
    publish.add_argument(
        "--abi",
        choices=["raw", "wasi-stdio", "component"],
        help="(default: component for a component, else wasi-stdio)",
    )
    publish.add_argument("--tier", help="(default: pure)")
    publish.add_argument("--limits", help="declared limits as JSON (default: {})")
    publish.add_argument("--host-call", action="append", dest="host_calls")
    publish.add_argument("--config", help="static config as JSON (default: {})")
    promotion = publish.add_mutually_exclusive_group()
    promotion.add_argument(
        "--promote",
        action="store_true",
        help="make it the promoted version (the one it replaces becomes the rollback target)",
    )
    promotion.add_argument(
        "--candidate",
        action="store_true",
        help="make it the promoted version's candidate (with --shadow-per-mille, --canary-percent)",
    )
    publish.add_argument(
        "--shadow-per-mille",
        type=int,
        default=0,
        help="with --candidate: live calls per thousand also run on it, after answering",
    )
    publish.add_argument(
        "--canary-percent",
        type=int,
        default=0,
        help="with --candidate: the share of tenants (a stable hash) it answers",
    )
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
    from app.authoring import Project
    from app.catalog import Candidate, build_definition, publish
    from app.sandbox import default_abi
    from app.storage import seed_directory

    configure_logging("warning", "console")
    try:
        project = Project.load(args.module) if args.module.is_dir() else None
        stated = project.definition if project else {}
        wasm = (project.module if project else args.module).read_bytes()
        extension_id = args.extension_id or stated.get("id")
        version = args.version or stated.get("version")
        if not extension_id or not version:
            raise ValueError("--id and --version are required (or an extension.json with both)")
        definition = build_definition(
            wasm,
            extension_id=extension_id,
            version=version,
            abi=args.abi or stated.get("abi") or default_abi(wasm),
            tier=args.tier or stated.get("risk_tier", "pure"),
            limits=json.loads(args.limits) if args.limits else stated.get("limits", {}),
            host_calls=args.host_calls or stated.get("host_calls", []),
            config=json.loads(args.config) if args.config else stated.get("config", {}),
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
        if not 0 <= args.shadow_per_mille <= 1000 or not 0 <= args.canary_percent <= 100:
            raise ValueError("--shadow-per-mille is 0-1000 and --canary-percent 0-100")
        if (args.shadow_per_mille or args.canary_percent) and not args.candidate:
            raise ValueError("--shadow-per-mille and --canary-percent go with --candidate")
        candidate = (
            Candidate(args.shadow_per_mille, args.canary_percent) if args.candidate else None
        )
        where = asyncio.run(
            publish(
                settings,
                definition,
                wasm,
                promote=args.promote,
                force=args.force,
                candidate=candidate,
            )
        )
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"extensions-runtime publish: {exc}\n")
        return 2
    sys.stdout.write(f"published {definition.id} {definition.version} to {where}\n")
    return 0
