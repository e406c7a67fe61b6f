"""Promotion events: the signed CloudEvents webhook Transformation calls.

The body is a structured-mode CloudEvent (``application/cloudevents+json`` or
``application/json``) and the header ``X-Ameide-Signature: sha256=<hex>``
carries an HMAC-SHA256 of the exact body bytes under the shared secret.
Anything unsigned, mis-signed or malformed is refused before it touches the
catalog.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.storage.source import ID_PATTERN, TENANT_PATTERN, VERSION_PATTERN

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


class PromotionEvent(BaseModel):
    """The CloudEvents 1.0 envelope fields the runtime relies on."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    specversion: str = Field(pattern=r"^1\.0$")
    id: str = Field(min_length=1, max_length=256)
    source: str = Field(min_length=1, max_length=1024)
    type: str
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
        raise EventRejected(400, "not a promotion CloudEvent") from None
    if event.type != EVENT_TYPE:
        raise EventRejected(400, f"unsupported event type, expected {EVENT_TYPE}")
    return event
