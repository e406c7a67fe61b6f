"""A broken policy file: the last good policy stays in force, counted and logged.

The service runs under pyvoy with its own copy of the risk tiers, where the
``pure`` tier caps fuel at 1 M. ``spin`` with 1 M iterations needs ~26 M fuel,
so while that policy is in force the call fails with FUEL_EXHAUSTED; were the
policy lost (deny-all, no tiers, no ceilings) the same call would succeed.
The file is then replaced by bad YAML, YAML of the wrong shape and binary junk.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests._clients import METHOD
from tests._servers import ROOT, cli_server

GOOD = (
    (ROOT / "config" / "risk-tiers.yaml")
    .read_text()
    .replace("      timeout_ms: 1000\n", "      timeout_ms: 1000\n      fuel: 1000000\n", 1)
)
BAD = [
    b"tiers:\n  pure: [unclosed\n",  # not YAML
    b"tiers:\n  pure:\n    allow: 5\n    ceilings: {fuel: -1}\n",  # YAML, wrong shape
    b"\x00\xff\xfe junk",  # not text
]
RELOAD_WAIT_S = 1.15  # the runtime looks at the file at most once a second
_METRIC = re.compile(
    r'^extensions_runtime_config_reload_failures_total\{file="policy"\} (\S+)$', re.M
)


@dataclass
class Served:
    url: str
    policy: Path
    log: Path


def _replace(path: Path, data: bytes) -> None:
    """As a ConfigMap update does: the new file appears whole."""
    temp = path.with_suffix(".tmp")
    temp.write_bytes(data)
    os.replace(temp, path)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("policy")
    policy = tmp / "risk-tiers.yaml"
    policy.write_text(GOOD)
    log = tmp / "server.log"
    env = {"EXTENSIONS_RUNTIME_POLICY_FILE": str(policy)}
    with cli_server("pyvoy", env=env, log_path=log) as url:
        yield Served(url, policy, log)


def _spin(url: str) -> dict[str, object]:
    response = httpx.post(
        url + METHOD,
        json={"extensionId": "spin", "inputJson": {"iterations": 1_000_000}},
        headers={"content-type": "application/json"},
        timeout=30,
    )
    body: dict[str, object] = response.json()
    return body


def _kind(body: dict[str, object]) -> str:
    details = body.get("details")
    assert isinstance(details, list), body
    return str(details[0]["debug"]["kind"])


def _failures(url: str) -> float:
    match = _METRIC.search(httpx.get(url + "/metrics", timeout=10).text)
    assert match, "the reload-failure metric is not exported"
    return float(match.group(1))


def test_invalid_policy_keeps_the_last_good_one(served: Served) -> None:
    assert _kind(_spin(served.url)) == "ERROR_KIND_FUEL_EXHAUSTED"  # the ceiling applies
    assert _failures(served.url) == 0
    for count, bad in enumerate(BAD, start=1):
        _replace(served.policy, bad)
        time.sleep(RELOAD_WAIT_S)
        body = _spin(served.url)  # the call that notices the change
        assert _kind(body) == "ERROR_KIND_FUEL_EXHAUSTED", f"policy lost after {bad!r}: {body}"
        assert _failures(served.url) == count
    log = served.log.read_text(errors="replace")
    assert log.count('"policy.reload_failed"') == len(BAD), log[-3000:]
    assert str(served.policy) in log

    # A good file again: it is picked up, so the old one was kept only while needed.
    _replace(served.policy, GOOD.replace("fuel: 1000000", "fuel: 100000000").encode())
    time.sleep(RELOAD_WAIT_S)
    _spin(served.url)
    body = _spin(served.url)
    assert "outputJson" in body, body
    assert _failures(served.url) == len(BAD)
