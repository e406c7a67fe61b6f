"""After the request body, ``receive()`` waits for the disconnect; where a server
answers at once instead, it is polled with a backoff, not in a loop.

connectrpc watches for a client that leaves by calling ``receive()`` until it
says ``http.disconnect``. The ASGI spec has that call wait; pyvoy answers it
at once with another empty ``http.request``, so the watch spun for as long as
the handler ran: ~150 receive round trips to Envoy's thread for a 10 ms call,
which made a Python component's call cost 2-3x its CPU inside Envoy
(docs/performance.md). Past the body's end such repeats are dropped here and
the server asked again after 5 ms, doubling to :data:`MAX_POLL_S`: a few polls
a call, and a disconnect still seen within that bound. A server that waits,
as uvicorn does, is called once, as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["MAX_POLL_S", "AfterBodyWaits"]

MAX_POLL_S = 0.1
_FIRST_POLL_S = 0.005

Message = dict[str, Any]


class AfterBodyWaits:
    """ASGI wrapper: repeats of the body's end are not handed to the app."""

    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        await self._app(scope, _patient(receive), send)


def _patient(receive: Any) -> Any:
    body_done = False
    wait_s = 0.0

    async def patient_receive() -> Message:
        nonlocal body_done, wait_s
        while True:
            message: Message = await receive()
            if message["type"] != "http.request":
                return message
            if not body_done:
                body_done = not message.get("more_body", False)
                return message
            # The body ended already: this is the server answering at once.
            wait_s = min(MAX_POLL_S, max(_FIRST_POLL_S, wait_s * 2))
            await asyncio.sleep(wait_s)

    return patient_receive
