"""A caller that leaves mid-call is noticed through pyvoy (Envoy), where ``receive()``
answers at once after the body (app/rpc/_receive.py polls it with a backoff): the
guest is stopped and the call counted ``cancelled``, long before its own deadline."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests._servers import ROOT, cli_server
from tests.runtime.test_pacing_metric import _publish
from tests.sandbox import _modules

pytestmark = pytest.mark.integration
METHOD = "/ameide.extensions.v1.WasmExtensionRuntime/InvokeExtension"


def _outcomes(url: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("extensions_runtime_invocations_total{") and 'extension="loop"' in line:
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            found[outcome] = float(line.rsplit(" ", 1)[1])
    return found


def test_a_caller_that_leaves_is_noticed_through_envoy(tmp_path: Path) -> None:
    root = tmp_path / "extensions"
    _publish(root, "loop", _modules.INFINITE_LOOP)
    policy = tmp_path / "tiers.yaml"
    policy.write_text(
        (ROOT / "config" / "risk-tiers.yaml")
        .read_text()
        .replace("timeout_ms: 1000", "timeout_ms: 30000", 1)
    )
    env = {
        "EXTENSIONS_RUNTIME_EXTENSIONS_DIR": str(root),
        "EXTENSIONS_RUNTIME_MODULE_CACHE_DIR": str(tmp_path / "cache"),
        "EXTENSIONS_RUNTIME_POLICY_FILE": str(policy),
        "EXTENSIONS_RUNTIME_DEFAULT_TIMEOUT_MS": "30000",
        "EXTENSIONS_RUNTIME_MAX_TIMEOUT_MS": "30000",
        "EXTENSIONS_RUNTIME_DEFAULT_FUEL": str(10**15),
        "EXTENSIONS_RUNTIME_MAX_FUEL": str(10**15),
    }
    with cli_server("pyvoy", env=env) as url:
        body = json.dumps({"extensionId": "loop", "inputJson": {}}).encode()
        headers = {"content-type": "application/json"}
        with pytest.raises(httpx.ReadTimeout):  # the caller gives up and closes
            httpx.post(url + METHOD, content=body, headers=headers, timeout=1.0)
        # Counted, not timed: the guest's own deadline is 30 s away, so an outcome
        # in the next 20 s can only be the disconnect.
        give_up = time.monotonic() + 20
        while not _outcomes(url) and time.monotonic() < give_up:
            time.sleep(0.1)
        assert _outcomes(url) == {"cancelled": 1.0}
