"""The invocation pipeline, assembled: catalog -> storage -> sandbox.

``Runtime`` is the production :class:`~app.invocation.Invoker`. It owns the
long-lived parts (engine, executor, caches, catalog poller) and their start and
stop, so the ASGI app and the CLI build the same thing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

from app.catalog import Catalog, ExtensionDefinition
from app.errors import ErrorKind, InvocationFailure
from app.invocation import Invocation, Outcome
from app.sandbox import (
    DeclaredLimits,
    Executor,
    SandboxEngine,
    effective_limits,
    run,
)
from app.settings import Settings
from app.storage import ModuleStore, ObjectSource, source_from_settings
from app.telemetry import get_logger

_log = get_logger("app.runtime")


class Runtime:
    """Runs invocations end to end and keeps the catalog current."""

    def __init__(self, settings: Settings, source: ObjectSource | None = None) -> None:
        self.settings = settings
        self.source = source or source_from_settings(settings)
        self.engine = SandboxEngine(settings)
        self.catalog = Catalog(self.source)
        self.modules = ModuleStore(
            self.source,
            self.engine,
            max_entries=settings.module_cache_entries,
            max_module_bytes=settings.max_module_bytes,
            disk_dir=settings.module_cache_dir,
        )
        self.executor = Executor(settings)
        self._poller: asyncio.Task[None] | None = None
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self.storage_problem: str | None = "not started"

    async def start(self) -> None:
        """Start the engine and hydrate the catalog; storage trouble is not fatal."""
        self.engine.start()
        await self.refresh_all()
        if self.settings.catalog_poll_interval_s > 0:
            self._poller = asyncio.create_task(self._poll())

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        self.executor.close()
        self.engine.close()
        await self.source.close()

    async def refresh_all(self) -> None:
        """Reload every definition; records why storage is unusable, if it is."""
        problem = await self.source.check()
        if problem is None:
            try:
                count = await self.catalog.refresh()
            except InvocationFailure as failure:
                problem = failure.message
            else:
                _log.info("catalog.refreshed", definitions=count)
        if problem != self.storage_problem and problem is not None:
            _log.error("storage.not_ready", problem=problem)
        self.storage_problem = problem

    async def refresh_extension(self, extension_id: str) -> None:
        """Reload one extension now; concurrent requests for it share one reload."""
        task = self._refreshing.get(extension_id)
        if task is None:
            task = asyncio.create_task(self.catalog.refresh_extension(extension_id))
            self._refreshing[extension_id] = task
            task.add_done_callback(lambda _: self._refreshing.pop(extension_id, None))
        await asyncio.shield(task)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.catalog_poll_interval_s)
            try:
                await self.refresh_all()
            except Exception:  # noqa: BLE001 - the poller must outlive any one failure
                _log.exception("catalog.poll_failed")

    def readiness(self) -> list[str]:
        """Reasons this process should not receive traffic; empty when ready."""
        return [self.storage_problem] if self.storage_problem else []

    async def invoke(self, invocation: Invocation) -> Outcome:
        started = time.perf_counter()
        definition = self.catalog.resolve(invocation.extension_id, invocation.version)
        compiled = await self.modules.get(
            definition.sha256, definition.wasm_blob_ref.key, definition.abi
        )
        limits = effective_limits(_declared(definition), self.settings, invocation.remaining_ms())
        deadline = time.monotonic() + limits.timeout_ms / 1000.0
        if invocation.deadline is not None:
            deadline = min(deadline, invocation.deadline)
        if limits.timeout_ms <= 0:
            raise InvocationFailure(ErrorKind.TIMEOUT, "the caller's deadline has passed")

        def work(cancel: threading.Event) -> Outcome:
            return run(
                self.engine,
                compiled,
                invocation.input,
                limits,
                context=invocation.context,
                deadline=deadline,
                include_logs=invocation.include_logs,
                cancel=cancel,
            )

        outcome, queue_us = await self.executor.submit(work, deadline=deadline)
        outcome.resolved_version = definition.version
        outcome.metrics.queue_us = queue_us
        outcome.metrics.duration_us = int((time.perf_counter() - started) * 1e6)
        return outcome


def _declared(definition: ExtensionDefinition) -> DeclaredLimits:
    limits = definition.limits
    return DeclaredLimits(
        fuel=limits.fuel,
        memory_bytes=limits.memory_bytes,
        timeout_ms=limits.timeout_ms,
        output_bytes=limits.output_bytes,
        log_bytes=limits.log_bytes,
        max_host_calls=limits.max_host_calls,
    )
