"""``bench/results/reliability.json`` as the Markdown tables of docs/reliability.md."""

from __future__ import annotations

from typing import Any


def _outcomes(window: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(window.get("outcomes", {}).items())) or "-"


_DRIVERS = {
    "h2load": "h2load (C) over 4 connections at a fixed rate each",
    "httpx": "httpx (Python, open loop)",
}


def _noisy(noisy: dict[str, Any]) -> list[str]:
    lines = [
        "### Noisy neighbour",
        "",
        f"Good `echo` traffic at {noisy['rate_rps']:.0f} calls/s for "
        f"{noisy['seconds_per_phase']:.0f} s alone, sent by "
        f"{_DRIVERS.get(noisy.get('driver', 'httpx'), 'httpx')}, then while a separate "
        f"process hammers "
        f"{', '.join(f'{k} x{v}' for k, v in noisy['abusers_in_flight'].items())} "
        "(in flight); in `tenant_flood` one tenant instead sends `echo` x64 in flight "
        "from h2load, unpaced, as fast as its answers (or refusals) come back.",
        "",
        "| scenario | good p95 alone | good p95 under abuse | ratio | good errors "
        "| abusive calls (outcomes) | server CPU share (ours/others) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in noisy.items():
        if not isinstance(row, dict) or "good_alone" not in row:
            continue
        abuse = "; ".join(
            f"{module}: {_outcomes(calls)}" for module, calls in row["abusive_calls"].items()
        )
        loud = row["good_under_abuse"]
        lines.append(
            f"| {name} | {row['good_alone']['p95_ms']} ms | {loud['p95_ms']} ms "
            f"| {row['p95_ratio']} | {row['good_errors_under_abuse']} | {abuse} "
            f"| {loud.get('cores_ours', '?')}/{loud.get('cores_others', '?')} |"
        )
    return lines


def _soak(soak: dict[str, Any]) -> list[str]:
    warm, last = soak["server_after_warmup"], soak["server_at_end"]
    return [
        "### Soak",
        "",
        "| calls | in flight | req/s | p50 / p95 / p99 ms | unexpected outcomes "
        "| RSS after warm-up → end | open fds | max threads | temp files left |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {soak['calls']} | {soak['in_flight']} | {soak['rps']} "
        f"| {soak['p50_ms']} / {soak['p95_ms']} / {soak['p99_ms']} "
        f"| {soak['unexpected_outcomes'] or 0} "
        f"| {warm['rss_kib'] // 1024} → {last['rss_kib'] // 1024} MiB "
        f"({soak['rss_growth_after_warmup_pct']:+}%) "
        f"| {warm['open_fds']} → {last['open_fds']} | {soak['max_threads']} "
        f"| {len(soak['temp_files_left'])} |",
    ]


def _faults(faults: dict[str, Any]) -> list[str]:
    lines = [
        "### Faults",
        "",
        "| fault | affected path: what callers saw | unaffected traffic | recovery |",
        "|---|---|---|---|",
    ]
    storage = faults.get("storage")
    if storage:
        uncached = storage["wordcount_uncached"]["before"]
        cached = storage["echo_cached"]["s3_killed"]
        lines.append(
            f"| S3 SIGKILLed for {storage['outage_s']:.0f} s, restarted "
            f"| uncached version: {_outcomes(uncached)}, p50 {uncached['p50_ms']} ms "
            f"| cached echo during outage: {_outcomes(cached)}, p95 {cached['p95_ms']} ms "
            f"| {storage['wordcount_recovery_s_after_s3_up']} s after S3 up "
            f"(restart {storage['s3_restart_s']} s) |"
        )
    upstream = faults.get("upstream")
    if upstream:
        for mode in ("hang", "reset", "garbage"):
            row = upstream[mode]
            lines.append(
                f"| host-call upstream: {mode} ({upstream['fault_s']:.0f} s) "
                f"| enrich: {_outcomes(row['enrich_during'])}, "
                f"p95 {row['enrich_during']['p95_ms']} ms "
                f"| echo: {_outcomes(row['echo_during'])}, p95 {row['echo_during']['p95_ms']} ms "
                f"| {row['enrich_recovery_s']} s |"
            )
    flood = faults.get("webhook_flood")
    if flood:
        answers = "; ".join(
            f"{kind}: {', '.join(f'{s} x{n}' for s, n in codes.items())}"
            for kind, codes in flood["answers"].items()
        )
        during = flood["echo"]["flood"]
        lines.append(
            f"| webhook flood: {flood['events']} events, {flood['in_flight']} in flight "
            f"({flood['events_per_s']}/s) | {answers}; real promotion after it: "
            f"{flood['promotion_after_flood']}, served {flood['hello_version_served_after']} "
            f"| echo: {_outcomes(during)}, p95 {during['p95_ms']} ms | immediate |"
        )
    policy = faults.get("policy")
    if policy:
        spin = policy["spin"]
        lines.append(
            "| policy file → invalid YAML, then binary junk "
            f"| capped spin stays {_outcomes(spin['invalid_yaml'])} / "
            f"{_outcomes(spin['binary'])} (the last good policy); "
            f"reload failures metric {policy['reload_failures_metric']:.0f}, "
            f"{policy['reload_failed_log_lines']} error log lines "
            f"| echo: {_outcomes(policy['echo_throughout'])} "
            f"| good edit applied in {policy['good_edit_applied_after_s']} s |"
        )
    bad = faults.get("bad_build")
    if bad:
        after = bad["after"]
        lines.append(
            f"| bad build promoted under traffic ({bad['tenants']} tenants x "
            f"{bad['rate_per_tenant']:.0f}/s; it traps on every call) "
            f"| {bad['failed_live_calls_before_rollback']} live calls failed before the "
            f"automatic rollback (rollbacks metric {bad['rollbacks_metric']:.0f}); after it: "
            + ", ".join(f"{t} {_outcomes(w)}" for t, w in after.items())
            + " | - "
            f"| rolled back {min(filter(None, bad['rollback_s_per_tenant']), default='never')} to "
            f"{max(filter(None, bad['rollback_s_per_tenant']), default='never')} s after the "
            "promotion |"
        )
    return lines


def render(report: dict[str, Any]) -> str:
    lines = [f"Measured {report['measured_at']} on {report['machine']} ({report['seconds']} s)."]
    if "faults_measured_at" in report:  # a faults-only run merged in
        lines[0] += f" Faults measured {report['faults_measured_at']}."
    if "noisy_neighbour" in report:
        lines += ["", *_noisy(report["noisy_neighbour"])]
    if "soak" in report:
        lines += ["", *_soak(report["soak"])]
    if "faults" in report:
        lines += ["", *_faults(report["faults"])]
    return "\n".join(lines) + "\n"
