"""After the body, a server that answers ``receive()`` at once (pyvoy) is polled
with a backoff instead of in a loop; one that waits (the ASGI spec) is called once;
a disconnect gets through either way."""

from __future__ import annotations

import asyncio
from typing import Any

from app.rpc import AfterBodyWaits
from app.rpc._receive import MAX_POLL_S

BODY = {"type": "http.request", "body": b"{}", "more_body": False}


class EagerServer:
    """Like pyvoy: past the body, an empty ``http.request`` at once, until it is told
    the client left."""

    def __init__(self) -> None:
        self.calls = 0
        self.left = False

    async def receive(self) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 1:
            return BODY
        if self.left:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": b"", "more_body": False}


async def _watching_app(scope: Any, receive: Any, send: Any) -> None:
    """connectrpc's shape: read the body, then watch for the disconnect while working."""
    assert await receive() == BODY
    while (await receive())["type"] != "http.disconnect":
        pass
    await send({"type": "seen", "what": "disconnect"})


async def test_an_eager_server_is_polled_a_few_times_and_the_disconnect_gets_through() -> None:
    server = EagerServer()
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    app = asyncio.create_task(AfterBodyWaits(_watching_app)({"type": "http"}, server.receive, send))
    await asyncio.sleep(0.3)  # the handler "works" for 300 ms
    polls = server.calls
    server.left = True
    await asyncio.wait_for(app, timeout=MAX_POLL_S * 20)
    assert sent == [{"type": "seen", "what": "disconnect"}]
    # 5, 10, 20, 40, 80, 100, 100... ms: a handful in 300 ms, not thousands.
    assert 2 <= polls <= 10, polls


async def test_a_server_that_waits_is_asked_once_per_message() -> None:
    messages = [BODY, {"type": "http.disconnect"}]
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return messages[calls - 1]

    async def send(message: dict[str, Any]) -> None:
        pass

    await AfterBodyWaits(_watching_app)({"type": "http"}, receive, send)
    assert calls == 2


async def test_a_body_in_parts_passes_through_unchanged() -> None:
    parts = [
        {"type": "http.request", "body": b"a", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},  # an empty part is not the end
        {"type": "http.request", "body": b"b", "more_body": False},
    ]
    seen: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return parts[len(seen)]

    async def app(scope: Any, receive_: Any, send: Any) -> None:
        for _ in parts:
            seen.append(await receive_())

    await AfterBodyWaits(app)({"type": "http"}, receive, None)
    assert seen == parts
