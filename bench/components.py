"""Components (``abi: component``): what a Python or JavaScript extension costs.

For ``hello-py`` (componentize-py) and ``hello-js`` (componentize-js), in one run:
compile time per compiler setting, the serialized artifact and its load time
from the disk cache, in-process instantiate and instantiate + call (p50/p95 of
a fresh store each call, as the service runs them), resident memory per live
instance, the first call of a restarted runtime with a warm disk cache, and
the service's p50/p95 over Connect JSON and gRPC from h2load (the server on
one core, h2load on the other, as in ``bench/run.py``).

    .venv/bin/python bench/components.py            # prints and writes results
    .venv/bin/python bench/components.py --quick    # fewer rounds

Writes bench/results/components.{json,md}; ``make bench`` runs it too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._c_load import h2load_run, request_body  # noqa: E402
from bench.run import (  # noqa: E402
    CLIENT_CPU,
    EXAMPLES,
    RESULTS,
    SERVER_CPU,
    calibration_ms,
    log,
    server,
    settle,
)

MODULES = ("hello-py", "hello-js")
PAYLOAD = b'{"name": "Ada"}'


def _pcts(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": ordered[len(ordered) // 2] * 1e3,
        "p95_ms": ordered[int(len(ordered) * 0.95)] * 1e3,
    }


def _rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096


def compile_times(wasm: bytes) -> dict[str, Any]:
    """Seconds to compile with each setting wasmtime-py exposes (Winch if it can)."""
    import wasmtime
    from wasmtime import component

    out: dict[str, Any] = {}
    for name, setting in (
        ("cranelift_speed", {"cranelift_opt_level": "speed"}),
        ("cranelift_none", {"cranelift_opt_level": "none"}),
        ("winch", {"strategy": "winch"}),
    ):
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        try:
            for attribute, value in setting.items():
                setattr(config, attribute, value)
            engine = wasmtime.Engine(config)
            started = time.perf_counter()
            component.Component(engine, wasm)
            out[name] = round(time.perf_counter() - started, 2)
        except Exception as exc:
            out[name] = f"unavailable: {str(exc).splitlines()[0][:80]}"
    return out


def _spare_made(engine: Any, made: int) -> None:
    """Wait (off the clock) until the maker thread has made ``made`` spares."""
    give_up = time.monotonic() + 10
    while engine.spares.made < made and time.monotonic() < give_up:
        time.sleep(0.001)


def in_process(module: str, rounds: int) -> dict[str, Any]:
    """Compile, serialize, load, instantiate and call one example in this process."""
    from wasmtime import Store, WasiConfig

    from app.catalog import ExtensionDefinition
    from app.invocation import ExecutionContext
    from app.sandbox import SandboxEngine, effective_limits, run
    from app.settings import Settings

    settings = Settings(auth_enabled=False)
    definition = ExtensionDefinition.from_json(
        (EXAMPLES / module / "1.0.0" / "extension.json").read_bytes()
    )
    wasm = (EXAMPLES / definition.wasm_blob_ref.key).read_bytes()
    context = ExecutionContext(tenant_id="bench")
    with SandboxEngine(settings.engine_config) as engine:
        started = time.perf_counter()
        compiled = engine.compile(wasm, definition.abi)
        compile_s = time.perf_counter() - started
        artifact = engine.serialize(compiled)
        loads = []
        for _ in range(3):
            started = time.perf_counter()
            engine.deserialize(artifact, definition.abi)
            loads.append(time.perf_counter() - started)
        limits = effective_limits(definition.limits, settings.limit_bounds, None)
        parts = compiled.component
        assert parts is not None

        def timed_run() -> tuple[float, Any]:
            """One call as the service makes it: seconds taken, and its outcome."""
            started = time.perf_counter()
            outcome = run(
                engine,
                compiled,
                PAYLOAD,
                limits,
                context=context,
                deadline=time.monotonic() + 5,
                include_logs=False,
                cancel=threading.Event(),
            )
            return time.perf_counter() - started, outcome

        instantiate, calls, fuel = [], [], 0
        engine.spares.enabled = False  # instantiate + call, as without spares
        for _ in range(rounds):
            store = Store(engine.component_engine)
            store.set_fuel(10**12)
            store.set_epoch_deadline(10**6)
            store.set_wasi(WasiConfig())
            started = time.perf_counter()
            parts.linker.instantiate(store, parts.component)
            instantiate.append(time.perf_counter() - started)
            elapsed, outcome = timed_run()
            calls.append(elapsed)
            fuel = outcome.metrics.fuel_consumed
        assert json.loads(outcome.output) == {"greeting": "Hello, Ada!"}
        # The service's default: the call finds the instance its predecessor had made.
        engine.spares.enabled = True
        on_spare, made = [], engine.spares.made
        for _ in range(rounds):
            elapsed, outcome = timed_run()
            on_spare.append(elapsed)
            _spare_made(engine, made + len(on_spare))
        assert json.loads(outcome.output) == {"greeting": "Hello, Ada!"}
        claimed = engine.spares.claimed
        # Resident memory of live instances: 20 stores held at once.
        before = _rss_bytes()
        held = []
        for _ in range(20):
            store = Store(engine.component_engine)
            store.set_fuel(10**12)
            store.set_epoch_deadline(10**6)
            store.set_wasi(WasiConfig())
            instance = parts.linker.instantiate(store, parts.component)
            handle = instance.get_func(store, "handle")
            assert handle is not None
            handle(store, PAYLOAD)
            handle.post_return(store)
            held.append(store)
        per_instance = (_rss_bytes() - before) / len(held)
        del held
    return {
        "module_mb": round(len(wasm) / 2**20, 1),
        "compile_s": round(compile_s, 2),
        "artifact_mb": round(len(artifact) / 2**20, 1),
        "disk_load_ms": round(statistics.median(loads) * 1e3, 1),
        "instantiate": _pcts(instantiate),
        "call": _pcts(calls),
        "call_on_spare": _pcts(on_spare[1:]),  # the first made its own
        "spares_claimed": claimed,
        "fuel_per_call": fuel,
        "resident_per_instance_mb": round(per_instance / 2**20, 1),
    }


def restart_first_call(module: str) -> dict[str, float]:
    """A restarted runtime's first call with the disk cache already warm (median of 3)."""
    from app.invocation import ExecutionContext, Invocation
    from app.runtime import Runtime
    from app.settings import Settings

    cache = Path(tempfile.mkdtemp(prefix="bench-components-"))

    def runtime() -> Any:
        return Runtime(
            Settings(auth_enabled=False, extensions_dir=EXAMPLES, module_cache_dir=cache)
        )

    async def fill() -> None:  # a promotion would do this: compile into the disk cache
        async with runtime() as warming:
            await warming.modules.warm(warming.catalog.resolve("", module))

    async def first_call() -> tuple[float, int]:
        async with runtime() as restarted:
            started = time.perf_counter()
            await restarted.invoke(Invocation(ExecutionContext(tenant_id="b"), module, "", PAYLOAD))
            return time.perf_counter() - started, restarted.modules.stats.disk_hits

    asyncio.run(fill())
    firsts = []
    for _ in range(3):
        elapsed, disk_hits = asyncio.run(first_call())
        assert disk_hits == 1
        firsts.append(elapsed)
    return {"first_call_ms": round(statistics.median(firsts) * 1e3, 1)}


def _until_ready(url: str, module: str) -> None:
    import httpx

    body = {"extensionId": module, "inputJson": {"name": "Ada"}}
    path = "/ameide.extensions.v1.WasmExtensionRuntime/InvokeExtension"
    give_up = time.monotonic() + 300
    while httpx.post(url + path, json=body, timeout=30).status_code != 200:
        assert time.monotonic() < give_up, f"{module} never became ready"
        time.sleep(0.5)


def service(quick: bool) -> dict[str, Any]:
    """h2load against one worker pinned apart from it (as ``bench/run.py``)."""
    duration = 3.0 if quick else 8.0
    out: dict[str, Any] = {}
    with server("service", {}, cpu=SERVER_CPU) as served:
        for module in MODULES:
            _until_ready(served.url, module)  # the first calls compile it (UNAVAILABLE meanwhile)
            for protocol in ("connect-json", "grpc"):
                body = request_body(protocol, module, json.loads(PAYLOAD))
                for concurrency in (1, 8):
                    settle(served.pid)
                    row = h2load_run(
                        served.url,
                        protocol,
                        body,
                        in_flight=concurrency,
                        duration_s=duration,
                        server_pid=served.pid,
                        cpu=CLIENT_CPU,
                    )
                    out[f"{protocol}/{module}/c{concurrency}"] = row
                    log(
                        f"  {protocol:12} {module} c={concurrency} p50={row['p50_us']:.0f}us "
                        f"p95={row['p95_us']:.0f}us rps={row['rps']:.0f} errors={row['errors']}"
                    )
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Components, {report['date']} ({report['machine']}; calibration"
        f" `sum(range(10**7))` {report['calibration_ms']} ms).",
        "",
        "| | hello-py | hello-js |",
        "|---|---|---|",
    ]
    rows = [
        ("module / artifact (MB)", lambda m: f"{m['module_mb']} / {m['artifact_mb']}"),
        ("compile, Cranelift speed (s)", lambda m: m["compile"]["cranelift_speed"]),
        ("compile, Cranelift none (s)", lambda m: m["compile"]["cranelift_none"]),
        ("compile, Winch", lambda m: m["compile"]["winch"]),
        ("disk-cache load (ms)", lambda m: m["disk_load_ms"]),
        (
            "instantiate p50 / p95 (ms)",
            lambda m: f"{m['instantiate']['p50_ms']:.2f} / {m['instantiate']['p95_ms']:.2f}",
        ),
        (
            "instantiate + call p50 / p95 (ms)",
            lambda m: f"{m['call']['p50_ms']:.2f} / {m['call']['p95_ms']:.2f}",
        ),
        (
            "call on a spare made ahead p50 / p95 (ms)",
            lambda m: f"{m['call_on_spare']['p50_ms']:.2f} / {m['call_on_spare']['p95_ms']:.2f}",
        ),
        ("fuel per call", lambda m: f"{m['fuel_per_call']:,}"),
        ("resident memory per live instance (MB)", lambda m: m["resident_per_instance_mb"]),
        (
            "first call after a restart, warm disk cache (ms)",
            lambda m: m["restart"]["first_call_ms"],
        ),
    ]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(str(cell(report[m])) for m in MODULES) + " |")
    for protocol in ("connect-json", "grpc"):
        for concurrency in (1, 8):
            cells = []
            for module in MODULES:
                r = report["service"][f"{protocol}/{module}/c{concurrency}"]
                cells.append(
                    f"{r['p50_us'] / 1e3:.2f} / {r['p95_us'] / 1e3:.2f} ({r['rps']:.0f}/s,"
                    f" {r['cpu_ms_per_call']:.1f} ms CPU)"
                )
            lines.append(
                f"| service {protocol} c={concurrency}: p50 / p95 ms (req/s, server CPU/call) | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    import platform

    from app.telemetry import configure_logging

    configure_logging("warning", "console")
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
        "calibration_ms": calibration_ms(),
    }
    for module in MODULES:
        log(f"{module}: compile settings")
        wasm = (EXAMPLES / module / "1.0.0" / "module.wasm").read_bytes()
        figures = in_process(module, 30 if args.quick else 200)
        figures["compile"] = compile_times(wasm)
        log(f"{module}: restart with a warm disk cache")
        figures["restart"] = restart_first_call(module)
        report[module] = figures
        log(f"{module}: {json.dumps(figures)}")
    log("service over Connect JSON and gRPC")
    report["service"] = service(args.quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "components.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (RESULTS / "components.md").write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
