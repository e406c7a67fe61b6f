"""Worker processes share one port and one precompiled-module directory."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests._clients import METHOD
from tests._servers import cli_server


def _counter(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    raise AssertionError(f"{name} not exported")


def test_two_workers_share_the_port_and_the_disk_cache(tmp_path: Path) -> None:
    env = {
        "EXTENSIONS_RUNTIME_WORKERS": "2",
        "EXTENSIONS_RUNTIME_MODULE_CACHE_DIR": str(tmp_path / "cache"),
    }
    with cli_server("pyvoy", env=env) as url:
        served: set[str] = set()
        deadline = time.monotonic() + 20
        # New connections are spread over the workers by the kernel (SO_REUSEPORT);
        # calls are sequential, so the first compile is on disk before the second.
        while len(served) < 2 and time.monotonic() < deadline:
            response = httpx.post(
                url + METHOD,
                json={"extensionId": "echo", "inputJson": {"n": 1}},
                headers={"content-type": "application/json"},
            )
            assert response.status_code == 200, response.text
            served.add(response.headers["x-served-by"])
        assert len(served) == 2, "only one worker ever answered"
        scrapes: dict[str, str] = {}
        while len(scrapes) < 2 and time.monotonic() < deadline:
            metrics = httpx.get(url + "/metrics")
            scrapes[metrics.headers["x-served-by"]] = metrics.text
        assert set(scrapes) == served
        compiles = sum(
            _counter(t, "extensions_runtime_module_cache_compiles") for t in scrapes.values()
        )
        disk_hits = sum(
            _counter(t, "extensions_runtime_module_cache_disk_hits") for t in scrapes.values()
        )
        assert (compiles, disk_hits) == (1, 1)
