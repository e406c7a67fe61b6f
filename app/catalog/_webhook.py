"""``POST /events/promotion``: the signed webhook that tells this process to reload.

The event only announces a promotion; storage holds it. So the handler reloads
the extension, then checks that what it read shows what the event says (the
version, the candidate and its shares): a read that overtook the write is
answered 503 and forgotten, and the sender's retry applies it. The other
processes of the fleet hear of it through the control state (``app/fleet``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.catalog._events import (
    MAX_EVENT_BYTES,
    SIGNATURE_HEADER,
    EventRejected,
    PromotionEvent,
    PromotionGate,
)
from app.errors import ErrorKind, InvocationFailure
from app.settings import Settings
from app.telemetry import get_logger

if TYPE_CHECKING:
    from app.runtime import Runtime

__all__ = ["promotion_route"]

_log = get_logger("app.catalog.webhook")
_ROLLOUT_FIELDS = {"previous", "candidate", "shadow_per_mille", "canary_percent"}


def promotion_route(runtime: Runtime | None, settings: Settings) -> Route:
    """The webhook route; one :class:`PromotionGate` (and its replay memory) per app."""
    promotions = PromotionGate(settings)

    async def promotion_event(request: Request) -> JSONResponse:
        try:
            body = await _read_capped(request, MAX_EVENT_BYTES)
            # Signed, fresh and not seen before; a replay (409) has no effect.
            event = promotions.admit(body, request.headers.get(SIGNATURE_HEADER))
        except EventRejected as rejected:
            _log.warning("promotion.rejected", status=rejected.status, reason=rejected.reason)
            return JSONResponse({"error": rejected.reason}, status_code=rejected.status)
        if runtime is None:
            return JSONResponse({"error": "no catalog in this process"}, status_code=503)
        extension_id = event.data.extension_id
        owner = event.data.tenant_id or ""
        try:
            await promotions.apply(event, _reload(runtime, event))
        except InvocationFailure as failure:
            # Storage is down or behind: the catalog is as storage says, the sender retries.
            _log.warning(
                "promotion.deferred", owner=owner, extension=extension_id, reason=failure.message
            )
            return JSONResponse({"error": failure.message}, status_code=503)
        _log.info("promotion.applied", owner=owner, extension=extension_id, event_id=event.id)
        try:
            # The other processes reload it on their next listing, not their next poll.
            await runtime.fleet.announce_promotion(extension_id, owner)
        except InvocationFailure as failure:
            _log.warning("promotion.not_announced", extension=extension_id, reason=failure.message)
        promoted, versions = runtime.catalog.extensions().get((owner, extension_id), (None, []))
        pointer = runtime.catalog.pointers().get((owner, extension_id))
        rollout = pointer.model_dump(mode="json", include=_ROLLOUT_FIELDS) if pointer else None
        return JSONResponse(
            {
                "extension_id": extension_id,
                "tenant_id": owner or None,
                "promoted": promoted,
                "versions": versions,
                "rollout": rollout,
            }
        )

    return Route("/events/promotion", promotion_event, methods=["POST"])


async def _reload(runtime: Runtime, event: PromotionEvent) -> None:
    owner, extension_id = event.data.tenant_id or "", event.data.extension_id
    await runtime.refresh_extension(extension_id, owner)
    unmet = event.data.unmet_by(runtime.catalog.pointers().get((owner, extension_id)))
    if unmet is not None:
        raise InvocationFailure(
            ErrorKind.UNAVAILABLE, f"storage does not show this promotion yet: {unmet}"
        )


async def _read_capped(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes without buffering them."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise EventRejected(413, "event too large")
        chunks.append(chunk)
    return b"".join(chunks)
