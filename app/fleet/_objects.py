"""What the fleet writes to storage, and where: one object per fact.

* ``_control/switches/{disable|degrade}-{digest}.json``: one admin switch or
  degradation (the :class:`~app.controls.Switch` itself, with who set it, when
  and until when). One object per target, so two operators acting at once
  never overwrite each other's switch; enabling deletes the object.
* ``_control/events/{ns}-{random}.json``: "this extension was promoted", written
  by the process that took the webhook (and by ``publish --promote``), so every
  other process reloads that one extension instead of waiting for its poll.
* ``_control/members/{process}.json``: a heartbeat; how many processes share
  the storage, for dividing tenant rate limits.

All three are listed with one request; nothing here is on a call's path.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app._ids import ID_PATTERN, TENANT_PATTERN
from app.controls import Degradation, Switch, Target
from app.storage import CONTROL_DIR, control_key

__all__ = [
    "EVENTS",
    "MAX_CONTROL_BYTES",
    "MEMBERS",
    "SWITCHES",
    "PromotionNotice",
    "event_key",
    "member_key",
    "parse_control",
    "promotion_notice",
    "switch_key",
]

SWITCHES = f"{CONTROL_DIR}switches/"
EVENTS = f"{CONTROL_DIR}events/"
MEMBERS = f"{CONTROL_DIR}members/"
MAX_CONTROL_BYTES = 16 * 1024
"""Largest control object read: a switch is a few hundred bytes."""


class PromotionNotice(BaseModel):
    """An event object's body."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: str = "promoted"
    extension_id: str = Field(pattern=ID_PATTERN)
    owner: str = Field(default="", pattern=f"^$|{TENANT_PATTERN}")


def promotion_notice(extension_id: str, owner: str) -> tuple[str, bytes]:
    """A new event object (key, body) saying ``(owner, extension_id)`` was promoted."""
    body = PromotionNotice(extension_id=extension_id, owner=owner).model_dump_json()
    return event_key(), body.encode()


def event_key() -> str:
    # Time first, so a listing reads oldest first; the random part keeps two
    # processes writing in the same nanosecond apart.
    return control_key("events", f"{time.time_ns():020d}-{secrets.token_hex(4)}")


def member_key(process: str) -> str:
    return control_key("members", process)


def switch_key(kind: str, target: Target) -> str:
    """The one object for ``kind`` (``disable``/``degrade``) of ``target``."""
    fields = target.model_dump(include=set(Target.model_fields), exclude_none=True)
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]
    return control_key("switches", f"{kind}-{digest}")


def parse_control(key: str, raw: bytes) -> Switch | Degradation | None:
    """A switch object's body as its control; ``None`` when it is not one (logged by the
    caller): a bad object is skipped, it never hides the good ones."""
    name = key[len(SWITCHES) :]
    try:
        if name.startswith("disable-"):
            return Switch.model_validate_json(raw)
        if name.startswith("degrade-"):
            return Degradation.model_validate_json(raw)
    except ValidationError:
        return None
    return None
