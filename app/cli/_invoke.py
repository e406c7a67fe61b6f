"""``extensions-runtime invoke``: run a module locally exactly as the service would.

Same engine configuration, same limit resolution (the flags act as the
extension's declared limits, capped by the same ceilings), same host functions.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import InvocationFailure
from app.invocation import ExecutionContext, Metrics, Outcome
from app.settings import Settings
from app.telemetry import configure_logging

if TYPE_CHECKING:
    from app.sandbox import DeclaredLimits, SandboxEngine

__all__ = ["UsageError", "invoke_module", "register", "run", "usage_report"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    invoke = commands.add_parser("invoke", help="run a module locally as the service would")
    invoke.add_argument(
        "module",
        type=Path,
        help="a .wasm module, or an extension directory (`new`, `build`): its module.wasm"
        " with the abi, limits and config of its extension.json, and input.json as the input",
    )
    invoke.add_argument(
        "--abi",
        choices=["raw", "wasi-stdio", "component"],
        help="how the module takes input and gives output"
        " (default: component for a component, else wasi-stdio)",
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
        "--no-cache",
        action="store_true",
        help="compile every time; by default the compiled module is kept in the module cache"
        " (EXTENSIONS_RUNTIME_MODULE_CACHE_DIR, else var/module-cache), so a Python or JS"
        " component compiles once, not on every run",
    )
    invoke.add_argument(
        "--json",
        action="store_true",
        help="print one JSON report on stdout, on every path (errors included)",
    )
    invoke.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Read the input and limits from the command line, then :func:`invoke_module`."""
    from app import sandbox
    from app.authoring import Project

    configure_logging("warning", "console")
    try:
        module, abi, config = args.module, args.abi, _config_object(args.config)
        declared_by: dict[str, Any] = {}
        sample: bytes | None = None
        if module.is_dir():  # an extension directory: what it will be published with
            project = Project.load(module)
            module, sample = project.module, project.sample_input
            abi = abi or project.get("abi", "component")
            declared_by = project.get("limits", {})
            if args.config == "{}":
                config = project.get("config", {})
        if args.input_file is not None:
            data = args.input_file.read_bytes()
        elif args.input is not None:
            data = args.input.encode()
        else:
            data = sample or b""
        flags = {
            "fuel": args.fuel,
            "memory_bytes": args.memory_bytes,
            "timeout_ms": args.timeout_ms,
            "output_bytes": args.output_bytes,
        }
        stated = {key: value for key, value in flags.items() if value is not None}
        declared = sandbox.DeclaredLimits.model_validate({**declared_by, **stated})
        settings = Settings()
        return invoke_module(
            settings,
            module,
            abi=abi,
            input_data=data,
            declared=declared,
            as_json=args.json,
            config=config,
            cache_dir=None if args.no_cache else _cache_dir(settings),
        )
    except (UsageError, OSError, ValueError) as exc:
        sys.stderr.write(f"extensions-runtime invoke: {exc}\n")
        if args.json:
            usage = exc if isinstance(exc, UsageError) else UsageError(str(exc))
            sys.stdout.write(usage_report(usage) + "\n")
        return 2


def _cache_dir(settings: Settings) -> Path:
    from app.settings import DEV_DEFAULTS

    configured = settings.module_cache_dir
    default = DEV_DEFAULTS["module_cache_dir"]
    assert isinstance(default, Path)
    return configured or default


def _config_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("--config must be a JSON object")
    return value


class UsageError(Exception):
    """Bad command line or unreadable module: exit status 2.

    ``kind`` is what ``--json`` reports: an error kind such as ``INVALID_MODULE``,
    or ``USAGE`` for a bad command line.
    """

    def __init__(self, message: str, kind: str = "USAGE") -> None:
        super().__init__(message)
        self.kind = kind


def _compile(engine: SandboxEngine, wasm: bytes, abi: str, cache_dir: Path | None) -> Any:
    """Compile, or load what an earlier run (or the service) compiled from the same bytes."""
    from app.storage import DiskCache

    if cache_dir is None:
        return engine.compile(wasm, abi)
    cache = DiskCache(cache_dir, engine.fingerprint)
    digest = hashlib.sha256(wasm).hexdigest()
    with cache.exclusive(digest):
        artifact = cache.load(digest)
        if artifact is not None:
            return engine.deserialize(artifact, abi)
        compiled = engine.compile(wasm, abi)
        cache.store(digest, engine.serialize(compiled))
        return compiled


def usage_report(error: UsageError) -> str:
    """The one JSON object ``--json`` prints when nothing could run."""
    report: dict[str, object] = {
        "output": None,
        "error": {"kind": error.kind, "message": str(error)},
        "metrics": None,
        "logs": [],
        "limits": None,
    }
    return json.dumps(report)


def _output_json(output: bytes) -> Any:
    try:
        return json.loads(output)
    except ValueError:
        try:
            return output.decode()
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(output).decode()}


def invoke_module(
    settings: Settings,
    module: Path,
    *,
    abi: str | None,
    input_data: bytes,
    declared: DeclaredLimits,
    as_json: bool,
    config: dict[str, Any] | None = None,
    cache_dir: Path | None = None,
) -> int:
    """Run ``module`` once; prints the result and returns the exit status.

    ``cache_dir``: the service's on-disk cache of compiled modules (same
    format and engine fingerprint), so a big component compiles once.
    """
    from app import sandbox  # wasmtime: imported by this command only

    try:
        wasm = module.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {module}: {exc.strerror}") from None
    outcome: Outcome | None = None
    failure: InvocationFailure | None = None
    with sandbox.SandboxEngine(settings.engine_config) as engine:
        try:
            compiled = _compile(engine, wasm, abi or sandbox.default_abi(wasm), cache_dir)
        except InvocationFailure as exc:
            raise UsageError(f"{module}: {exc.kind.value}: {exc.message}", exc.kind.value) from None
        limits = sandbox.effective_limits(declared, settings.limit_bounds, None)
        started = time.perf_counter()
        try:
            outcome = sandbox.run(
                engine,
                compiled,
                input_data,
                limits,
                context=ExecutionContext(request_id="local"),
                deadline=time.monotonic() + limits.timeout_ms / 1000,
                include_logs=True,
                config_json=json.dumps(config or {}, separators=(",", ":")).encode(),
            )
            outcome.metrics.duration_us = int((time.perf_counter() - started) * 1e6)
        except InvocationFailure as exc:
            failure = exc
    metrics = outcome.metrics if outcome else (failure.metrics if failure else None)
    if as_json:
        report = {
            "output": _output_json(outcome.output) if outcome else None,
            "error": {"kind": failure.kind.value, "message": failure.message} if failure else None,
            "metrics": asdict(metrics or Metrics()),
            "logs": [
                {"level": line.level.name, "message": line.message}
                for line in (outcome.logs if outcome else failure.logs if failure else [])
            ],
            "limits": asdict(limits),
        }
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        if outcome is not None:
            for line in outcome.logs:
                sys.stderr.write(f"[{line.level.name}] {line.message}\n")
            sys.stdout.buffer.write(outcome.output)
            sys.stdout.flush()
            if metrics:
                memory = metrics.peak_memory_bytes
                peak = f", peak memory {memory} B" if memory else ""  # not measured for components
                sys.stderr.write(
                    f"\n-- fuel {metrics.fuel_consumed}{peak}, {metrics.duration_us} us\n"
                )
        if failure is not None:
            for line in failure.logs:
                sys.stderr.write(f"[{line.level.name}] {line.message}\n")
            sys.stderr.write(f"error: {failure.kind.value}: {failure.message}\n")
    return 0 if failure is None else 1
