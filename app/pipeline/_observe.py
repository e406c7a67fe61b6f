"""The outer layer: every call is resolved, traced, logged and counted, failures included.

Resolution happens here, first, because everything observed about a call is
labelled by what it resolved to (owner, extension, version, tier); a call
that resolves to nothing is still counted, as ``_unknown``. The log line and
the metrics are written in a ``finally``, so a failure is counted exactly like
a success.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from opentelemetry.trace import Status, StatusCode

from app.catalog import ExtensionDefinition
from app.controls import PLATFORM_OWNER
from app.errors import InvocationFailure
from app.invocation import Invocation, Outcome
from app.pipeline._shadow import Shadow
from app.telemetry import (
    NO_SPAN,
    InvocationMetrics,
    LogSampler,
    bind_call_fields,
    get_logger,
    reset_call_fields,
    tracer,
)

__all__ = ["Observe", "Resolve"]

_log = get_logger("app.runtime")


Resolve = Callable[[str, str, str], ExtensionDefinition]
"""``(caller's tenant, extension_id, version) -> definition``; raises ``InvocationFailure``."""


class Observe:
    """Resolves the call, then hands it to the controls inside one span, log line and count."""

    def __init__(
        self,
        resolve: Resolve,
        guard: Shadow,
        metrics: InvocationMetrics,
        *,
        log_invocations: bool,
        tracing: bool = True,
        log_per_s: float = 0.0,
    ) -> None:
        self._resolve = resolve
        self._guard = guard
        self.metrics = metrics
        self._log_invocations = log_invocations
        self._sampler = LogSampler(log_per_s)
        self._tracing = tracing
        """False when no provider records spans: then no span objects are made."""

    async def invoke(self, invocation: Invocation) -> Outcome:
        """Run ``invocation`` end to end (the :class:`~app.invocation.Invoker` method)."""
        started = time.perf_counter()
        context = invocation.context
        labels = {"owner": "", "extension": "_unknown", "version": "", "tier": ""}
        result = "ok"
        outcome: Outcome | None = None
        with (
            tracer().start_as_current_span(
                "extension.invoke",
                attributes={
                    "ameide.extension": invocation.extension_id[:128],  # caller-chosen: bounded
                    "ameide.tenant": context.tenant_id,
                    "ameide.request_id": context.request_id,
                },
            )
            if self._tracing
            else NO_SPAN
        ) as span:
            try:
                definition = self._resolve(
                    context.tenant_id, invocation.extension_id, invocation.version
                )
                owner = definition.owner or PLATFORM_OWNER
                labels = {
                    "owner": owner,
                    "extension": definition.id,
                    "version": definition.version,
                    "tier": definition.risk_tier,
                }
                if self._tracing:
                    span.set_attributes(
                        {
                            "ameide.version": definition.version,
                            "ameide.owner": owner,
                            "ameide.risk_tier": definition.risk_tier,
                        }
                    )
                # The fields every log line written during the call carries.
                bound = bind_call_fields(
                    {
                        "owner": owner,
                        "extension": definition.id,
                        "version": definition.version,
                        "tenant": context.tenant_id,
                        "organization": context.organization_id,
                        "request_id": context.request_id,
                    }
                )
                try:
                    outcome = await self._guard.run(definition, invocation)
                finally:
                    reset_call_fields(bound)
                if self._tracing:
                    span.set_attribute("ameide.fuel_consumed", outcome.metrics.fuel_consumed)
                return outcome
            except InvocationFailure as failure:
                result = failure.kind.value.lower()
                failure.resolved_version = failure.resolved_version or labels["version"]
                span.set_attribute("ameide.error_kind", failure.kind.value)
                span.set_status(Status(StatusCode.ERROR, failure.kind.value))
                raise
            except asyncio.CancelledError:
                # The caller left or its deadline passed: not a runtime fault.
                result = "cancelled"
                raise
            except BaseException:
                result = "internal"
                raise
            finally:
                metrics = outcome.metrics if outcome else None
                tenant = context.tenant_id
                if self._log_invocations and (result != "ok" or self._sampler.admit(tenant)):
                    unlogged = self._sampler.take_unlogged(tenant)
                    (_log.info if result == "ok" else _log.warning)(
                        "invocation",
                        **labels,
                        outcome=result,
                        tenant=tenant,
                        organization=context.organization_id,
                        request_id=context.request_id,
                        duration_us=int((time.perf_counter() - started) * 1e6),
                        **({"unlogged": unlogged} if unlogged else {}),
                    )
                self.metrics.observe(
                    **labels,
                    outcome=result,
                    tenant=context.tenant_id,
                    seconds=time.perf_counter() - started,
                    fuel=metrics.fuel_consumed if metrics else 0,
                    peak_memory=metrics.peak_memory_bytes if metrics else 0,
                )
