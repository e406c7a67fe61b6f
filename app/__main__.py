"""Command line: ``extensions-runtime serve|invoke``.

Exit statuses follow one rule everywhere: 0 success, 1 the work failed,
2 the command line or its inputs were unusable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.settings import DEV_EXTENSIONS_DIR, EXAMPLES_DIR, Settings
from app.telemetry import configure_logging, get_logger


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
    serve.add_argument("--workers", type=int, default=None, help="processes (pyvoy only)")
    serve.add_argument(
        "--dev",
        action="store_true",
        help="embedded default: examples/extensions, relaxed auth, debug page",
    )

    invoke = commands.add_parser("invoke", help="run a module locally as the service would")
    invoke.add_argument("module", type=Path, help="path to a .wasm module")
    invoke.add_argument(
        "--abi",
        choices=["raw", "wasi-stdio"],
        default="wasi-stdio",
        help="how the module takes input and gives output (default: wasi-stdio)",
    )
    source = invoke.add_mutually_exclusive_group()
    source.add_argument("--input", help="input as a JSON document (or any text)")
    source.add_argument("--input-file", type=Path, help="read the input bytes from a file")
    invoke.add_argument(
        "--config",
        default="{}",
        help="the definition's config as a JSON object, as the guest reads it "
        "(host_config, or AMEIDE_CONFIG for wasi-stdio)",
    )
    invoke.add_argument("--fuel", type=int)
    invoke.add_argument("--memory-bytes", type=int)
    invoke.add_argument("--timeout-ms", type=int)
    invoke.add_argument("--output-bytes", type=int)
    invoke.add_argument(
        "--json",
        action="store_true",
        help="print one JSON report on stdout, on every path (errors included)",
    )

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
        "--abi", choices=["raw", "wasi-stdio"], default="wasi-stdio", help="(default: wasi-stdio)"
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
    return parser


def _config_object(text: str) -> dict[str, Any]:
    import json

    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("--config must be a JSON object")
    return value


def _invoke(args: argparse.Namespace) -> int:
    from app._invoke import UsageError, invoke_module, usage_report
    from app.sandbox import DeclaredLimits

    configure_logging("warning", "console")
    try:
        if args.input_file is not None:
            data = args.input_file.read_bytes()
        else:
            data = (args.input or "").encode()
        declared = DeclaredLimits(
            fuel=args.fuel,
            memory_bytes=args.memory_bytes,
            timeout_ms=args.timeout_ms,
            output_bytes=args.output_bytes,
        )
        return invoke_module(
            Settings(),
            args.module,
            abi=args.abi,
            input_data=data,
            declared=declared,
            as_json=args.json,
            config=_config_object(args.config),
        )
    except (UsageError, OSError, ValueError) as exc:
        sys.stderr.write(f"extensions-runtime invoke: {exc}\n")
        if args.json:
            usage = exc if isinstance(exc, UsageError) else UsageError(str(exc))
            sys.stdout.write(usage_report(usage) + "\n")
        return 2


def _publish(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from app._publish import build_definition, publish
    from app.storage import seed_directory

    configure_logging("warning", "console")
    try:
        wasm = args.module.read_bytes()
        definition = build_definition(
            wasm,
            extension_id=args.extension_id,
            version=args.version,
            abi=args.abi,
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


def _serve(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    for name in ("host", "port", "server", "workers"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.dev:
        overrides["dev"] = True  # Settings applies the dev defaults (DEV_DEFAULTS)
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if settings.extensions_dir == DEV_EXTENSIONS_DIR and not settings.s3_endpoint_url:
        from app.storage import seed_directory

        seed_directory(EXAMPLES_DIR, DEV_EXTENSIONS_DIR)
    configure_logging(settings.log_level, settings.log_format)
    from app import auth, hostcalls

    try:
        # Refused here with one clear line, not as a traceback in a server worker.
        auth.check_settings(settings)
        hostcalls.check_settings(settings)
    except ValueError as exc:
        get_logger("app.cli").error("cli.refused_settings", error=str(exc))
        return 2
    from app._serve import serve

    return serve(settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``extensions-runtime`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "invoke":
            return _invoke(args)
        if args.command == "publish":
            return _publish(args)
    except ValidationError as exc:
        configure_logging()
        get_logger("app.cli").error("cli.invalid_settings", errors=exc.errors(include_url=False))
        return 2
    parser.error(f"unknown command {args.command}")
    return 2  # pragma: no cover - parser.error exits


if __name__ == "__main__":
    sys.exit(main())
