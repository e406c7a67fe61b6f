"""``make reliability``: a bad build promoted under traffic, rolled back automatically.

Four tenants call ``rules`` (an echo, version 1) at a steady rate. Version 2,
a module that traps on every call, is promoted (pointer with ``previous`` and
``promoted_at``, then the signed webhook, as Transformation does). Its
version-wide breaker opens once enough tenants have failed, the runtime serves
version 1 again (app/rollout), and the report says how many live calls failed
in between and how long the rollback took.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import wasmtime

from app.catalog import EVENT_TYPE, SIGNATURE_HEADER, sign
from bench._faults import Stream, Traffic
from bench._harness import log, metric, publish_local, request_body, serve
from tests.integration._storage import WEBHOOK_SECRET, example_module

__all__ = ["bad_build"]

TENANTS = ("acme", "globex", "initech", "umbrella")
TRAP = bytes(
    wasmtime.wat2wasm(
        '(module (memory (export "memory") 1)'
        ' (func (export "alloc") (param i32) (result i32) (i32.const 1024))'
        ' (func (export "handle") (param i32 i32) (result i64) unreachable))'
    )
)


def _promote(url: str, root: Path) -> int:
    pointer = {
        "version": "2.0.0",
        "previous": "1.0.0",
        "promoted_at": datetime.now(UTC).isoformat(),
        "rollback_window_s": 600,
    }
    (root / "rules" / "promoted.json").write_text(json.dumps(pointer))
    body = json.dumps(
        {
            "specversion": "1.0",
            "id": f"bad-build-{datetime.now(UTC).timestamp()}",
            "source": "reliability/bad-build",
            "type": EVENT_TYPE,
            "time": datetime.now(UTC).isoformat(),
            "data": {"extension_id": "rules"},
        }
    ).encode()
    headers = {
        "content-type": "application/cloudevents+json",
        SIGNATURE_HEADER: sign(body, WEBHOOK_SECRET.encode()),
    }
    return httpx.post(url + "/events/promotion", content=body, headers=headers).status_code


def bad_build(work: Path, *, quick: bool) -> dict[str, Any]:
    root = work / "bad-build" / "extensions"
    root.mkdir(parents=True)
    publish_local(root, "rules", example_module("echo"))  # 1.0.0, promoted
    publish_local(root, "rules", TRAP, number="2.0.0", promote=False)
    rate, before_s, after_s = (10.0, 3.0, 8.0) if quick else (20.0, 5.0, 15.0)
    streams = [
        Stream(t, rate, lambda i, t=t: request_body("rules", {"n": i}, tenant=t)) for t in TENANTS
    ]
    env = {
        "EXTENSIONS_RUNTIME_EXTENSIONS_DIR": str(root),
        "EXTENSIONS_RUNTIME_BREAKER_MIN_CALLS": "10",
        "EXTENSIONS_RUNTIME_BREAKER_MIN_TENANTS": "3",
    }
    with (
        serve(work / "bad-build", "bad-build", **env) as service,
        Traffic(service.url, streams) as traffic,
    ):
        time.sleep(before_s)
        traffic.mark("promoted")
        status = _promote(service.url, root)
        log(f"  bad build promoted (webhook {status})")
        traffic.settle(TENANTS[0], "promoted", timeout=after_s)
        time.sleep(2)
        traffic.mark("end")
        rollbacks = metric(
            service.url,
            "extensions_runtime_rollbacks_total",
            'extension="rules",owner="_platform"',
        )
    failed = sum(
        sum(
            n
            for outcome, n in traffic.window(t, "promoted", "end")["outcomes"].items()
            if outcome != "ok"
        )
        for t in TENANTS
    )
    recovery = [traffic.recovery_s(t, "promoted", "end") for t in TENANTS]
    return {
        "tenants": len(TENANTS),
        "rate_per_tenant": rate,
        "webhook_status": status,
        "failed_live_calls_before_rollback": failed,
        "rollback_s_per_tenant": recovery,
        "rollbacks_metric": rollbacks,
        "after": {t: traffic.window(t, "promoted", "end") for t in TENANTS},
    }
