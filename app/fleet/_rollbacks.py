"""Automatic rollbacks, shared: one process rolls back, every process follows.

A process decides a rollback from its own breaker (``app/rollout``); the
others may not have seen enough failures yet. So the deciding process writes
``_control/rollbacks/<digest(owner, extension)>.json`` and every process
follows it on its next listing; ``ClearRollback`` deletes it, and a process
that had followed it serves the promoted version again (and does not roll the
same promotion back on its own afterwards).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from app._ids import ID_PATTERN, VERSION_PATTERN
from app.storage import CONTROL_DIR, SharedStore, StoredObject, control_key
from app.telemetry import get_logger

__all__ = ["ROLLBACKS", "SharedRollback", "SharedRollbacks", "rollback_key"]

_log = get_logger("app.fleet")
ROLLBACKS = f"{CONTROL_DIR}rollbacks/"
_MAX_BYTES = 16 * 1024


class SharedRollback(BaseModel):
    """One rollback in force, as stored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    owner: str = Field(default="", max_length=128)
    extension_id: str = Field(pattern=ID_PATTERN)
    from_version: str = Field(pattern=VERSION_PATTERN)
    to_version: str = Field(pattern=VERSION_PATTERN)
    reason: str = Field(default="", max_length=1024)
    at: AwareDatetime


def rollback_key(owner: str, extension_id: str) -> str:
    digest = hashlib.sha256(f"{owner}\0{extension_id}".encode()).hexdigest()[:32]
    return control_key("rollbacks", digest)


Follow = Callable[[dict[tuple[str, str], SharedRollback]], None]


class SharedRollbacks:
    """The stored rollbacks, read when their ETags change and handed to ``follow``."""

    def __init__(self, store: SharedStore, follow: Follow) -> None:
        self._store = store
        self.follow = follow
        self._etags: dict[str, str] = {}
        self._held: dict[str, SharedRollback] = {}

    async def read(self, listed: list[StoredObject]) -> None:
        for gone in set(self._etags) - {o.key for o in listed}:
            self._etags.pop(gone, None)
            self._held.pop(gone, None)
        for item in listed[:1000]:
            if self._etags.get(item.key) == item.etag:
                continue
            raw = await self._store.read_object(item.key, _MAX_BYTES)
            self._etags[item.key] = item.etag
            try:
                self._held[item.key] = SharedRollback.model_validate_json(raw or b"")
            except ValidationError:
                self._held.pop(item.key, None)
                if raw is not None:
                    _log.warning("fleet.rollback_rejected", key=item.key)
        self.follow({(r.owner, r.extension_id): r for r in self._held.values()})

    async def write(self, rollback: SharedRollback) -> None:
        key = rollback_key(rollback.owner, rollback.extension_id)
        await self._store.put(key, rollback.model_dump_json().encode(), "application/json")
        self._held[key], self._etags[key] = rollback, ""

    async def remove(self, owner: str, extension_id: str) -> None:
        key = rollback_key(owner, extension_id)
        await self._store.delete(key)
        self._held.pop(key, None)
        self._etags.pop(key, None)
