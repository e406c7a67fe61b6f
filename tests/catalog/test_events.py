"""The promotion webhook refuses replays: a fresh ``time`` and an id taken once per window.

Each webhook test runs in-process (the ASGI app, fast lane) and through a real
server (uvicorn on loopback, the integration lane): same requests, same answers.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app.asgi import create_app
from app.catalog import EVENT_TYPE, SIGNATURE_HEADER, EventMemory, sign
from app.errors import ErrorKind, InvocationFailure
from app.runtime import Runtime
from app.settings import Settings
from app.storage import PLATFORM, LocalDirectorySource
from tests._asgi import served_client
from tests._servers import ROOT

SECRET = b"webhook-secret-for-replay-tests"
EXAMPLES = ROOT / "examples" / "extensions"


class CountingSource(LocalDirectorySource):
    """The example directory, counting what the catalog reads (and failing on demand)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: Counter[str] = Counter()
        self.down = False

    async def list_versions(self, extension_id: str, owner: str = PLATFORM) -> list[str]:
        self.reads[extension_id] += 1
        if self.down:
            raise InvocationFailure(ErrorKind.UNAVAILABLE, "storage unavailable (test)")
        return await super().list_versions(extension_id, owner)


Served = tuple[httpx.AsyncClient, CountingSource]


@pytest.fixture(params=["in-process", pytest.param("uvicorn", marks=pytest.mark.integration)])
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
    settings = Settings(
        auth_enabled=False,
        extensions_dir=EXAMPLES,
        module_cache_dir=tmp_path,
        catalog_poll_interval_s=0,
        promotion_webhook_secret=SecretStr(SECRET.decode()),
        promotion_event_window_s=300,
    )
    source = CountingSource(EXAMPLES)
    app = create_app(settings, runtime=Runtime(settings, source=source))
    async with served_client(app, request.param) as client:
        yield client, source


def _event(event_id: str, when: datetime | None, extension_id: str = "hello") -> bytes:
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": "transformation/tests",
        "type": EVENT_TYPE,
        "data": {"extension_id": extension_id},
    }
    if when is not None:
        body["time"] = when.isoformat()
    return json.dumps(body).encode()


async def _post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    headers = {"content-type": "application/cloudevents+json", SIGNATURE_HEADER: sign(body, SECRET)}
    return await client.post("/events/promotion", content=body, headers=headers)


async def test_a_replayed_event_is_taken_once_and_reads_storage_once(served: Served) -> None:
    client, source = served
    before = source.reads["hello"]
    body = _event("evt-replayed", datetime.now(UTC))
    statuses = Counter([(await _post(client, body)).status_code for _ in range(400)])
    assert statuses == Counter({200: 1, 409: 399})
    assert source.reads["hello"] - before == 1
    # Another event (a new id) is still taken: the refusals were the replays'.
    assert (await _post(client, _event("evt-next", datetime.now(UTC)))).status_code == 200
    assert source.reads["hello"] - before == 2


async def test_events_outside_the_window_or_without_time_are_refused(served: Served) -> None:
    client, source = served
    before = sum(source.reads.values())
    now = datetime.now(UTC)
    for name, when in (
        ("old", now - timedelta(seconds=301)),
        ("future", now + timedelta(seconds=301)),
        ("a-day-old", now - timedelta(days=1)),
    ):
        answer = await _post(client, _event(f"evt-{name}", when))
        assert answer.status_code == 400, (name, answer.text)
        assert "outside the accepted window" in answer.json()["error"]
    missing = await _post(client, _event("evt-timeless", None))
    assert missing.status_code == 400
    assert "time" in missing.json()["error"]
    naive = _event("evt-naive", None).replace(b'"data"', b'"time": "2026-01-01T00:00:00", "data"')
    assert (await _post(client, naive)).status_code == 400
    number = _event("evt-number", None).replace(b'"data"', b'"time": 1800000000, "data"')
    assert (await _post(client, number)).status_code == 400  # not RFC 3339 text
    assert sum(source.reads.values()) == before
    # Within the window, both ways, is fine.
    for name, when in (
        ("late", now - timedelta(seconds=250)),
        ("early", now + timedelta(seconds=250)),
    ):
        assert (await _post(client, _event(f"evt-{name}", when))).status_code == 200, name


async def test_an_event_that_had_no_effect_may_be_retried(served: Served) -> None:
    client, source = served
    body = _event("evt-during-outage", datetime.now(UTC))
    source.down = True
    assert (await _post(client, body)).status_code == 503
    source.down = False
    assert (await _post(client, body)).status_code == 200
    assert (await _post(client, body)).status_code == 409


def test_memory_is_bounded_and_forgets_by_expiry() -> None:
    clock = [1000.0]
    memory = EventMemory(window_s=60, capacity=3, clock=lambda: clock[0])
    for n in range(3):
        assert memory.claim("s", f"e{n}", 1000.0 + n)
    assert not memory.claim("s", "e1", 1001.0)
    assert memory.claim("other-source", "e1", 1001.0)  # ids are unique per source
    assert len(memory) == 3  # e0 (closest to expiry) gave way
    assert memory.claim("s", "e0", 1000.0)
    clock[0] = 1061.5  # e0..e1 expired: their time check refuses them from now on
    assert len(memory) == 1
    for n in range(10_000):
        memory.claim("s", f"flood-{n}", clock[0])
    assert len(memory) == 3
    memory.forget("s", "flood-9999")
    assert memory.claim("s", "flood-9999", clock[0])
