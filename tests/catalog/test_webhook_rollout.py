"""A promotion event may carry the rollout options written with the pointer; the
webhook applies it only once storage shows them (the event announces, storage
holds), and answers what it loaded."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app.asgi import create_app
from app.catalog import EVENT_TYPE, SIGNATURE_HEADER, sign
from app.runtime import Runtime
from app.settings import Settings
from tests._asgi import served_client
from tests.rollout.test_rollout import CONSTANT, _point, _publish
from tests.sandbox._modules import ECHO

SECRET = b"webhook-secret-for-rollout-tests"
OPTIONS = {"candidate": "2", "shadow_per_mille": 100, "canary_percent": 50}


@pytest.fixture(params=["in-process", pytest.param("uvicorn", marks=pytest.mark.integration)])
async def served(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Path]]:
    root = tmp_path / "extensions"
    await _publish(root, "1", ECHO)
    await _publish(root, "2", CONSTANT)
    _point(root, version="1", **OPTIONS)
    settings = Settings(
        auth_enabled=False,
        extensions_dir=root,
        module_cache_dir=tmp_path / "cache",
        catalog_poll_interval_s=0,
        promotion_webhook_secret=SecretStr(SECRET.decode()),
    )
    app = create_app(settings, runtime=Runtime(settings))
    async with served_client(app, request.param) as client:
        yield client, root


def _event(event_id: str, **data: Any) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "transformation/tests",
            "type": EVENT_TYPE,
            "time": datetime.now(UTC).isoformat(),
            "data": {"extension_id": "rules", **data},
        }
    ).encode()


async def _post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    headers = {"content-type": "application/cloudevents+json", SIGNATURE_HEADER: sign(body, SECRET)}
    return await client.post("/events/promotion", content=body, headers=headers)


async def test_an_event_with_the_stored_options_is_applied_and_answers_them(
    served: tuple[httpx.AsyncClient, Path],
) -> None:
    client, _ = served
    answer = await _post(client, _event("e1", version="1", **OPTIONS))
    assert answer.status_code == 200, answer.text
    assert answer.json()["promoted"] == "1"
    assert answer.json()["rollout"] == {"previous": None, **OPTIONS}


async def test_an_event_ahead_of_storage_is_503_and_applied_when_retried(
    served: tuple[httpx.AsyncClient, Path],
) -> None:
    client, root = served
    body = _event("e2", version="1", candidate="2", shadow_per_mille=0, canary_percent=20)
    early = await _post(client, body)
    assert early.status_code == 503
    assert early.json()["error"] == (
        "storage does not show this promotion yet: shadow_per_mille is 100, the event says 0"
    )
    _point(root, version="1", candidate="2", canary_percent=20)  # the write lands
    retried = await _post(client, body)  # the same event: forgotten, so not a replay
    assert retried.status_code == 200, retried.text
    assert retried.json()["rollout"]["canary_percent"] == 20
    assert (await _post(client, body)).status_code == 409  # now it was taken


@pytest.mark.parametrize(
    "options",
    [{"canary_percent": 101}, {"shadow_per_mille": -1}, {"candidate": "../2"}],
)
async def test_options_out_of_range_are_refused_before_storage(
    served: tuple[httpx.AsyncClient, Path], options: dict[str, Any]
) -> None:
    client, _ = served
    answer = await _post(client, _event("e3", **options))
    assert answer.status_code == 400
