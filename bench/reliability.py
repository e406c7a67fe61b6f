"""`make reliability`: noisy neighbours, a soak and injected faults, with figures.

Everything runs on loopback, bounded in count and time, and stops by itself:

1. **noisy neighbour**: steady good ``echo`` traffic (open loop, fixed rate)
   alone, then while other callers (a separate process) hammer an
   infinite-loop module, a memory bomb and a log flood; with the circuit
   breaker as configured and with it out of reach (the sandbox alone);
2. **soak**: thousands of mixed invocations over several extensions and
   tenants at 32 in flight: outcomes, RSS / open fds / threads of the server
   process (``/proc``) after warm-up vs at the end, temp files left behind;
3. **faults**: the S3 server killed and restarted mid-run; a host-call
   upstream that hangs, resets connections or answers garbage; the promotion
   webhook flooded with signed and unsigned posts; the policy file replaced
   with invalid YAML.

Prints each section's figures and writes bench/results/reliability.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _faults
from bench._bad_build import bad_build
from bench._h2load import h2load_flood, h2load_open_loop
from bench._harness import (
    AUTH_ENV,
    METHOD,
    RESULTS,
    Calls,
    CpuMeter,
    auth_headers,
    closed_loop,
    extensions_dir,
    log,
    open_loop,
    outcome_of,
    proc_stats,
    request_body,
    serve,
)
from bench._reliability_report import render
from bench._soak import soak

# -- 1. noisy neighbour -----------------------------------------------------------------

GOOD_INPUT = {"data": "x" * 1010}  # ~1 KiB of JSON, as in `make bench`
ABUSERS = {"loop": 4, "bomb": 4, "flood": 4}  # in flight per hostile module
FLOODERS = {"echo": 64}  # one tenant's cheap calls, as fast as refusals come back
ROUNDS = 3  # alone / under abuse phases alternate this many times
ABUSER_CYCLE_S = 0.25  # a paced abuser starts a call at most every 250 ms per connection
# name: (service environment, abusers paced?, hostile modules and calls in flight)
SCENARIOS: dict[str, tuple[dict[str, str], bool, dict[str, int]]] = {
    # As configured: the breaker cuts a failing version off after 20 calls.
    "breaker_default": ({}, True, ABUSERS),
    # The breaker out of reach: the sandbox, the lanes and the event loop alone.
    "breaker_off": ({"EXTENSIONS_RUNTIME_BREAKER_MIN_CALLS": "1000000000"}, True, ABUSERS),
    # Abusers retrying at once, however fast they are refused: a request flood.
    "request_flood": ({}, False, ABUSERS),
    # One tenant floods a cheap extension, unpaced, while another tenant's paced
    # traffic must not notice: the per-tenant rate limit, held refusals and turns.
    # Limits as an operator sizes them: a tenant's default a small share of what one
    # process serves (~460 echo calls/s here), the good tenant raised in the controls file.
    "tenant_flood": (
        {
            "EXTENSIONS_RUNTIME_RATE_LIMIT_PER_S": "50",
            "EXTENSIONS_RUNTIME_RATE_LIMIT_BURST": "100",
        },
        False,
        FLOODERS,
    ),
}
CONTROLS = "tenant_limits:\n  - {tenant_id: good, rate_per_s: 1000, burst: 1000}\n"

QUICK_SCENARIOS = ("breaker_off", "tenant_flood")


def abuse_main(url: str, duration: float, names: list[str], paced: bool) -> None:
    """The abusive callers, in a process of their own; prints their outcomes as JSON."""

    async def run() -> dict[str, Any]:
        results: dict[str, Calls] = {}

        async def hammer(name: str, in_flight: int) -> None:
            results[name] = await closed_loop(
                url,
                in_flight,
                lambda i: request_body(name, {"i": i}, tenant=f"abuser-{name}", includeLogs=True),
                headers=auth_headers(f"abuser-{name}"),
                count=10**9,
                duration=duration,
                min_cycle_s=ABUSER_CYCLE_S if paced else 0.0,
            )

        in_flight = {**ABUSERS, **FLOODERS}
        await asyncio.gather(*(hammer(name, in_flight[name]) for name in names))
        return {name: calls.summary() for name, calls in results.items()}

    print(json.dumps(asyncio.run(run())))


@contextlib.contextmanager
def abusers(url: str, duration: float, names: str, *, paced: bool) -> Iterator[dict[str, Any]]:
    """The hostile callers for ``duration`` s; their outcomes per module, once the block ends."""
    if DRIVER["driver"] == "h2load" and names in FLOODERS:
        with flood(url, duration, names) as result:
            yield result
        return
    result: dict[str, Any] = {}
    args = [sys.executable, __file__, "--abuse", url, "--abuse-duration", str(duration)]
    args += ["--abusers", names] + ([] if paced else ["--unpaced"])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        yield result
    finally:
        out, _ = proc.communicate(timeout=duration + 60)
        result.update(json.loads(out.strip().splitlines()[-1]))


@contextlib.contextmanager
def flood(url: str, duration: float, name: str) -> Iterator[dict[str, Any]]:
    """One tenant's unpaced flood from h2load, and the kind of its refusals.

    h2load logs only HTTP statuses, so one call of the flooding tenant, made
    while the flood runs, shows what a refusal says (``OVERLOADED`` and its hint).
    """
    result: dict[str, Any] = {}
    tenant = f"abuser-{name}"
    body, headers = request_body(name, {"i": 0}, tenant=tenant), auth_headers(tenant)
    with h2load_flood(url, FLOODERS[name], duration, body, headers=headers) as calls:
        yield result
        refused = httpx.post(
            url + METHOD,
            content=body,
            headers={"content-type": "application/json", **headers},
            timeout=30,
        )
    result[name] = calls.summary()
    result[name]["sampled_refusal"] = outcome_of(refused)


DRIVER = {"driver": "h2load", "cpu": None}  # set from the command line in main()


def good_traffic(url: str, rate: float, duration: float) -> tuple[Calls, dict[str, float]]:
    body, headers = request_body("echo", GOOD_INPUT), auth_headers("good")
    with CpuMeter() as cpu:
        if DRIVER["driver"] == "h2load":
            calls = h2load_open_loop(url, rate, duration, body, headers=headers, cpu=DRIVER["cpu"])
        else:
            calls = asyncio.run(open_loop(url, rate, duration, lambda _: body, headers))
    return calls, cpu.result


def _phase(calls: Calls, cpu: dict[str, float]) -> dict[str, Any]:
    return {**calls.summary(), **cpu}


def _pooled(rounds: list[tuple[Calls, dict[str, float]]]) -> dict[str, Any]:
    """One summary of several phases: their calls together, CPU shares averaged."""
    pooled = Calls(started=0.0)
    for calls, _ in rounds:
        pooled.latencies_ms += calls.latencies_ms
        pooled.outcomes.update(calls.outcomes)
        pooled.ended += calls.ended - calls.started
    cpu = {key: round(sum(c[key] for _, c in rounds) / len(rounds), 2) for key in rounds[0][1]}
    return {**pooled.summary(), **cpu, "rounds": len(rounds)}


def _pooled_abuse(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Outcomes of the abusive calls over all rounds, per hostile module."""
    modules: dict[str, dict[str, Any]] = {}
    for round_ in rounds:
        for module, summary in round_.items():
            entry = modules.setdefault(
                module, {"calls": 0, "outcomes": Counter(), "sampled": Counter()}
            )
            entry["calls"] += summary["calls"]
            entry["outcomes"].update(summary["outcomes"])
            if "sampled_refusal" in summary:
                entry["sampled"][summary["sampled_refusal"]] += 1
    return {
        m: {
            "calls": e["calls"],
            "outcomes": dict(e["outcomes"]),
            **({"sampled_refusals": dict(e["sampled"])} if e["sampled"] else {}),
        }
        for m, e in modules.items()
    }


def noisy_neighbour(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    rate, duration = args.rate, args.duration
    report: dict[str, Any] = {
        "rate_rps": rate,
        "seconds_per_phase": duration,
        "abusers_in_flight": ABUSERS,
        "paced_abuser_cycle_s": ABUSER_CYCLE_S,
        "driver": DRIVER["driver"],
    }
    chosen = args.scenarios.split(",") if args.scenarios else None
    for name, (scenario_env, paced, hostile) in SCENARIOS.items():
        if chosen is not None and name not in chosen:
            continue
        if chosen is None and args.quick and name not in QUICK_SCENARIOS:
            continue
        names = args.abusers if hostile is ABUSERS else ",".join(hostile)
        scenario_dir = work / f"noisy-{name}"
        scenario_dir.mkdir()
        shutil.copytree(work / "extensions", scenario_dir / "extensions")
        (scenario_dir / "controls.yaml").write_text(CONTROLS)
        env = {
            "EXTENSIONS_RUNTIME_EXTENSIONS_DIR": str(scenario_dir / "extensions"),
            "EXTENSIONS_RUNTIME_KILL_SWITCHES_FILE": str(scenario_dir / "controls.yaml"),
            **AUTH_ENV,
            **scenario_env,
        }
        env.update(dict(item.split("=", 1) for item in args.env))
        with serve(scenario_dir, f"noisy-{name}", **env) as service:
            good_traffic(service.url, rate, 2.0)  # warm-up
            for module in hostile:  # compile them before anything is measured
                httpx.post(
                    service.url + METHOD,
                    content=request_body(module, 1, tenant="warm-up"),
                    headers={"content-type": "application/json", **auth_headers("warm-up")},
                    timeout=30,
                )
            # Alone and under abuse alternate, ROUNDS times each, so drift on this
            # shared machine lands on both sides of the ratio instead of one.
            per_phase = duration / ROUNDS
            quiet_rounds, loud_rounds, abuse_rounds = [], [], []
            for _ in range(ROUNDS):
                quiet_rounds.append(good_traffic(service.url, rate, per_phase))
                with abusers(service.url, per_phase + 2.5, names, paced=paced) as abuse:
                    time.sleep(2.0)  # the abusers' process starts and reaches its steady state
                    loud_rounds.append(good_traffic(service.url, rate, per_phase))
                abuse_rounds.append(abuse)
            quiet, loud = _pooled(quiet_rounds), _pooled(loud_rounds)
            abuse = _pooled_abuse(abuse_rounds)
            log(f"noisy {name}: alone {quiet}")
            log(f"noisy {name}: under abuse {loud}")
            log(f"noisy {name}: abusers {abuse}")
            after = _phase(*good_traffic(service.url, rate, min(duration, 5.0)))
            stats = proc_stats(service.pid)
        report[name] = {
            "abusers_paced": paced,
            "abusers_in_flight": {n: {**ABUSERS, **FLOODERS}[n] for n in names.split(",")},
            "good_alone": quiet,
            "good_under_abuse": loud,
            "good_after_abuse": after,
            "p95_ratio": round(loud["p95_ms"] / quiet["p95_ms"], 2) if quiet["p95_ms"] else None,
            "good_errors_under_abuse": sum(v for k, v in loud["outcomes"].items() if k != "ok"),
            "abusive_calls": abuse,
            "server_after": stats,
        }
    return report


# -- main ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, one noisy scenario")
    parser.add_argument("--only", default="noisy,soak,faults", help="sections to run")
    parser.add_argument("--rate", type=float, default=200.0, help="good calls per second")
    parser.add_argument(
        "--duration", type=float, default=15.0, help="seconds alone and under abuse, each"
    )
    parser.add_argument("--soak-calls", type=int, default=20_000, help="calls in the soak")
    parser.add_argument(
        "--abusers", default=",".join(ABUSERS), help="hostile modules to run, e.g. flood"
    )
    parser.add_argument(
        "--scenarios",
        default=None,
        help=f"noisy-neighbour scenarios to run (of {','.join(SCENARIOS)}; default: all,"
        f" {','.join(QUICK_SCENARIOS)} with --quick)",
    )
    parser.add_argument(
        "--driver",
        choices=("h2load", "httpx"),
        default="h2load",
        help="what sends the good traffic: h2load (C, default) or httpx (Python)",
    )
    parser.add_argument(
        "--driver-cpu", type=int, default=None, help="pin the h2load driver to this CPU"
    )
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the service")
    parser.add_argument("--abuse", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--unpaced", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--abuse-duration", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=RESULTS / "reliability.json")
    return parser


def main() -> None:
    args = _parser().parse_args()
    if args.abuse:
        abuse_main(args.abuse, args.abuse_duration, args.abusers.split(","), not args.unpaced)
        return
    DRIVER.update(driver=args.driver, cpu=args.driver_cpu)
    sections = set(args.only.split(","))
    started = time.monotonic()
    report: dict[str, Any] = {
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
    }
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        work = Path(tmp)
        extensions_dir(work)
        if "noisy" in sections:
            report["noisy_neighbour"] = noisy_neighbour(work, args)
        if "soak" in sections:
            count, seconds = (4_000, 60.0) if args.quick else (args.soak_calls, 300.0)
            report["soak"] = soak(work, count, seconds)
        if "faults" in sections:
            report["faults"] = {
                "storage": _faults.storage(work, outage_s=4.0 if args.quick else 8.0),
                "upstream": _faults.upstream(work, fault_s=3.0 if args.quick else 5.0),
                "webhook_flood": _faults.webhook_flood(work, 1_000 if args.quick else 5_000),
                "policy": _faults.policy(work),
                "bad_build": bad_build(work, quick=args.quick),
            }
    report["seconds"] = round(time.monotonic() - started, 1)
    text = json.dumps(report, indent=2)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n")
    args.output.with_suffix(".md").write_text(render(report))
    print(render(report))
    log(f"wrote {args.output} in {report['seconds']} s")


if __name__ == "__main__":
    main()
