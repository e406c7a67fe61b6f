"""Promotion events: the signed CloudEvents webhook Transformation calls.

The body is a structured-mode CloudEvent (``application/cloudevents+json`` or
``application/json``) and the header ``X-Ameide-Signature: sha256=<hex>``
carries an HMAC-SHA256 of the exact body bytes under the shared secret.
Anything unsigned, mis-signed or malformed is refused before it touches the
catalog. A signature is forever, so the signed body must also be fresh: its
CloudEvents ``time`` within the window of now (either way), and its id not one
this process already took within that window (see :class:`EventMemory`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Awaitable, Callable

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from app._ids import ID_PATTERN, TENANT_PATTERN, VERSION_PATTERN
from app.catalog._definition import PromotedPointer
from app.catalog._replay import EventMemory
from app.settings import Settings

__all__ = [
    "EVENT_TYPE",
    "MAX_EVENT_BYTES",
    "SIGNATURE_HEADER",
    "EventMemory",
    "EventRejected",
    "PromotionData",
    "PromotionEvent",
    "PromotionGate",
    "check_fresh",
    "sign",
    "verify_and_parse",
]

SIGNATURE_HEADER = "x-ameide-signature"
EVENT_TYPE = "io.ameide.extensions.promoted"
MAX_EVENT_BYTES = 64 * 1024


class PromotionData(BaseModel):
    """``data`` of a promotion event."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    extension_id: str = Field(pattern=ID_PATTERN)
    version: str | None = Field(default=None, pattern=VERSION_PATTERN)
    tenant_id: str | None = Field(default=None, pattern=TENANT_PATTERN)
    """The owning tenant; absent for a platform extension."""
    candidate: str | None = Field(default=None, pattern=VERSION_PATTERN)
    shadow_per_mille: int | None = Field(default=None, ge=0, le=1000)
    canary_percent: int | None = Field(default=None, ge=0, le=100)
    """The rollout options the sender wrote with the pointer (``app/rollout``)."""

    def unmet_by(self, pointer: PromotedPointer | None) -> str | None:
        """What this event says that the pointer read from storage does not show.

        The event only announces; storage holds the promotion. A pointer that
        does not show it yet (a read that overtook the write) must not be
        taken as applied: the sender retries until it is.
        """
        if pointer is None:
            return "nothing is promoted" if self.version or self.candidate else None
        claims = {
            "version": (self.version, pointer.version),
            "candidate": (self.candidate, pointer.candidate),
            "shadow_per_mille": (self.shadow_per_mille, pointer.shadow_per_mille),
            "canary_percent": (self.canary_percent, pointer.canary_percent),
        }
        for name, (said, stored) in claims.items():
            if said is not None and said != stored:
                return f"{name} is {stored!r}, the event says {said!r}"
        return None


class PromotionEvent(BaseModel):
    """The CloudEvents 1.0 envelope fields the runtime relies on."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    specversion: str = Field(pattern=r"^1\.0$")
    id: str = Field(min_length=1, max_length=256)
    source: str = Field(min_length=1, max_length=1024)
    type: str
    time: AwareDatetime = Field(strict=True)  # RFC 3339 text with a zone, as CloudEvents says
    data: PromotionData


class EventRejected(Exception):
    """The webhook request is refused; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def sign(body: bytes, secret: bytes) -> str:
    """The signature header value for ``body`` (used by publishers and tests)."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_and_parse(body: bytes, signature: str | None, secret: bytes | None) -> PromotionEvent:
    """The event, if the signature is valid and the body is a promotion event."""
    if secret is None:
        raise EventRejected(503, "promotion webhook is not configured")
    if len(body) > MAX_EVENT_BYTES:
        raise EventRejected(413, "event too large")
    if not signature or not re.fullmatch(r"sha256=[0-9a-f]{64}", signature):
        raise EventRejected(401, "missing or malformed signature")
    if not hmac.compare_digest(sign(body, secret), signature):
        raise EventRejected(401, "bad signature")
    try:
        event = PromotionEvent.model_validate_json(body)
    except ValidationError:
        raise EventRejected(
            400, "not a promotion CloudEvent (specversion, id, source, type, time, data)"
        ) from None
    if event.type != EVENT_TYPE:
        raise EventRejected(400, f"unsupported event type, expected {EVENT_TYPE}")
    return event


def check_fresh(event: PromotionEvent, now: float, window_s: float) -> None:
    """Refuse an event whose ``time`` is not within ``window_s`` of ``now`` (a replay, or skew)."""
    skew = event.time.timestamp() - now
    if not -window_s < skew < window_s:
        raise EventRejected(
            400, f"event time is outside the accepted window of {window_s:g} s from now"
        )


class PromotionGate:
    """What a webhook request must pass before it may touch the catalog (one per process)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        secret = settings.promotion_webhook_secret
        self._secret = secret.get_secret_value().encode() if secret else None
        self._window = settings.promotion_event_window_s
        self._clock = clock
        self._memory = EventMemory(self._window, settings.promotion_event_memory, clock)

    def admit(self, body: bytes, signature: str | None) -> PromotionEvent:
        """The event if signed, fresh and new; a replay is 409 and must have no effect."""
        event = verify_and_parse(body, signature, self._secret)
        check_fresh(event, self._clock(), self._window)
        if not self._memory.claim(event.source, event.id, event.time.timestamp()):
            raise EventRejected(409, "event already received")
        return event

    async def apply(self, event: PromotionEvent, effect: Awaitable[None]) -> None:
        """Await the admitted event's ``effect``; if it fails, forget the event.

        An event that had no effect (storage down) must be processed when the
        sender retries it, so it is not remembered as taken.
        """
        try:
            await effect
        except BaseException:
            self._memory.forget(event.source, event.id)
            raise
