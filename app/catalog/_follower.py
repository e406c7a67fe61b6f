"""Keeping the catalog current with storage, and knowing when storage is unusable.

Promotions arrive through the webhook (one extension at a time) and, as a
fallback for missed events, through polling everything. Both land here, so
the catalog itself only loads what it is told to. Storage trouble is not
fatal: it is remembered as the reason this process is not ready, and a call
for an extension the catalog does not know *because* storage is down is told
to retry (``UNAVAILABLE``) instead of that it does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib

from app.catalog._catalog import Catalog
from app.catalog._definition import ExtensionDefinition
from app.errors import ErrorKind, InvocationFailure
from app.storage import PLATFORM
from app.telemetry import get_logger

__all__ = ["CatalogFollower"]

_log = get_logger("app.catalog")


class CatalogFollower:
    """Hydrates the catalog, follows promotions, and answers resolution for callers."""

    def __init__(self, catalog: Catalog, *, poll_interval_s: float) -> None:
        self.catalog = catalog
        self._poll_interval_s = poll_interval_s
        self._poller: asyncio.Task[None] | None = None
        self._refreshing: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.storage_problem: str | None = "not started"
        """Why storage is unusable, or ``None`` while it answers."""

    async def start(self) -> None:
        """Load every definition, then poll (unless the interval is 0)."""
        await self.refresh_all(warm=False)
        if self._poll_interval_s > 0:
            self._poller = asyncio.create_task(self._poll())

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    async def refresh_all(self, *, warm: bool = True) -> None:
        """Reload every definition; records why storage is unusable, if it is."""
        problem = await self.catalog.source.check()
        if problem is None:
            try:
                count = await self.catalog.refresh(warm=warm)
            except InvocationFailure as failure:
                problem = failure.message
            else:
                _log.info("catalog.refreshed", definitions=count)
        if problem != self.storage_problem and problem is not None:
            _log.error("storage.not_ready", problem=problem)
        self.storage_problem = problem

    async def refresh_extension(self, extension_id: str, owner: str = PLATFORM) -> None:
        """Reload one extension now; concurrent requests for it share one reload."""
        key = (owner, extension_id)
        task = self._refreshing.get(key)
        if task is None:
            task = asyncio.create_task(self.catalog.refresh_extension(extension_id, owner))
            self._refreshing[key] = task
            task.add_done_callback(lambda _: self._refreshing.pop(key, None))
        await asyncio.shield(task)

    def readiness(self) -> list[str]:
        """Reasons this process should not receive traffic; empty when ready."""
        return [self.storage_problem] if self.storage_problem else []

    def resolve(self, tenant: str, extension_id: str, version: str) -> ExtensionDefinition:
        """The definition a caller of ``tenant`` gets (see :meth:`Catalog.resolve`)."""
        try:
            return self.catalog.resolve(tenant, extension_id, version)
        except InvocationFailure as failure:
            if failure.kind is ErrorKind.NOT_FOUND and self.storage_problem is not None:
                # Unknown because storage is unusable, not because it does not exist:
                # tell callers to retry rather than give up.
                raise InvocationFailure(
                    ErrorKind.UNAVAILABLE, "extension storage is unavailable, retry later"
                ) from None
            raise

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval_s)
            try:
                await self.refresh_all()
            except Exception:  # noqa: BLE001 - the poller must outlive any one failure
                _log.exception("catalog.poll_failed")
