"""Large Connect bodies are decoded on a worker thread; small ones inline.

Guards the override of connectrpc's private ``_read_post_request``: if an
upgrade stops calling it, the large body is decoded on the loop and this fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.asgi import create_app
from app.invocation import EchoInvoker
from app.rpc import _offload
from app.settings import Settings
from tests._clients import METHOD
from tests._servers import thread_server

pytestmark = pytest.mark.integration  # real HTTP servers


@pytest.fixture
def decoded_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[bool, int]]]:
    """(decoded on an event loop's thread, size) per decode."""
    seen: list[tuple[bool, int]] = []
    real = _offload.decode_message

    def spy(codec: Any, data: bytes, message_class: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            on_loop = False
        else:
            on_loop = True
        seen.append((on_loop, len(data)))
        return real(codec, data, message_class)

    monkeypatch.setattr(_offload, "decode_message", spy)
    yield seen


@pytest.fixture
def served() -> Iterator[str]:
    with thread_server(create_app(Settings(auth_enabled=False), invoker=EchoInvoker())) as url:
        yield url


def test_large_bodies_are_decoded_off_the_loop(
    served: str, decoded_on: list[tuple[bool, int]]
) -> None:
    value = {"numbers": list(range(20_000))}
    body = {"extensionId": "echo", "inputJson": value}
    response = httpx.post(served + METHOD, json=body, timeout=30)
    assert response.status_code == 200, response.text
    ((on_loop, size),) = decoded_on
    assert size > _offload.OFF_LOOP_BYTES
    assert not on_loop

    decoded_on.clear()
    small = httpx.post(served + METHOD, json={"extensionId": "echo", "inputJson": [1]})
    assert small.status_code == 200, small.text
    ((on_loop, size),) = decoded_on
    assert size < _offload.OFF_LOOP_BYTES
    assert on_loop


def test_a_bad_large_body_is_still_invalid_argument(
    served: str, decoded_on: list[tuple[bool, int]]
) -> None:
    body = b'{"extensionId": "echo", "inputJson": [' + b"1," * 50_000 + b"]"
    response = httpx.post(
        served + METHOD, content=body, headers={"content-type": "application/json"}
    )
    assert response.json()["code"] == "invalid_argument", response.text
    assert decoded_on == [(False, len(body))]
