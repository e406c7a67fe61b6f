"""The prepare layer: the compiled module, the limits, the deadline and the host bridge.

Everything a run needs is decided here, on the event loop, before the
scheduler picks where it runs: the effective limits (the definition's, the
lowest of the risk tier's and any degradation's ceilings, the settings'
defaults and maxima: :func:`~app.sandbox.effective_limits`), the module
(cached, else downloaded and compiled, off the caller's turn, waited for no
longer than the call may take: ``UNAVAILABLE`` past that), and the caller's
deadline. When that deadline is shorter than the guest's own limit it bounds
the run, and a TIMEOUT is then the caller's choice, not held against the
guest. The limits and the host bridge depend only on the version, the policy
snapshot and the degradations that cover the call, so they are settled once
per combination (a plan) and reused until one of them changes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

from opentelemetry import trace

from app.catalog import ExtensionDefinition
from app.controls import off_turn
from app.errors import ErrorKind, InvocationFailure
from app.hostcalls import HttpBridge, InvocationBridge, Policy, PolicyStore
from app.invocation import Invocation, Outcome
from app.limits import NO_LIMITS, DeclaredLimits
from app.sandbox import CompiledModule, Job, Limits, Scheduler, effective_limits
from app.settings import LimitBounds
from app.storage import ModuleStore
from app.telemetry import NO_SPAN, tracer

__all__ = ["Prepare"]


_MAX_PLANS = 4096


@dataclass(frozen=True, slots=True)
class _Plan:
    definition: ExtensionDefinition
    policy: Policy
    degraded: list[DeclaredLimits]
    limits: Limits
    bridge: InvocationBridge
    real_clock_and_random: bool


class Prepare:
    """Turns a permitted call into a :class:`~app.sandbox.Job` and has it scheduled."""

    def __init__(
        self,
        modules: ModuleStore,
        policy: PolicyStore,
        host_bridge: HttpBridge,
        bounds: LimitBounds,
        scheduler: Scheduler,
        *,
        tracing: bool = True,
    ) -> None:
        self._tracing = tracing
        """False when no provider records spans: the current span is not even asked."""
        self._modules = modules
        self._policy = policy
        self._host_bridge = host_bridge
        self._bounds = bounds
        self._scheduler = scheduler
        self._plans: dict[int, _Plan] = {}

    def _plan(self, definition: ExtensionDefinition, degraded: list[DeclaredLimits]) -> _Plan:
        """The settled limits and bridge of this version under this policy and these
        degradations, worked out once and reused until one of the three changes."""
        policy = self._policy.current()
        plan = self._plans.get(id(definition))
        if (
            plan is not None
            and plan.definition is definition
            and plan.policy is policy
            and plan.degraded == degraded
        ):
            return plan
        tier = policy.tier(definition.risk_tier)
        ceiling = (tier.ceilings if tier is not None else NO_LIMITS).lowest(*degraded)
        plan = _Plan(
            definition=definition,
            policy=policy,
            degraded=list(degraded),
            limits=effective_limits(definition.limits, self._bounds, None, ceiling=ceiling),
            bridge=self._host_bridge.for_invocation(
                policy=policy,
                tier=definition.risk_tier,
                requested=definition.host_calls,
                extension_id=definition.id,
                version=definition.version,
            ),
            real_clock_and_random=tier is not None and tier.real_clock_and_random,
        )
        if len(self._plans) >= _MAX_PLANS:  # versions come and go: start over, rarely
            self._plans.clear()
        self._plans[id(definition)] = plan  # the plan holds the definition: no id reuse
        return plan

    async def run(
        self,
        definition: ExtensionDefinition,
        invocation: Invocation,
        degraded: list[DeclaredLimits],
    ) -> Outcome:
        """``degraded``: the ceilings of operator degradations that cover this call."""
        started = time.perf_counter()
        recording = self._tracing and trace.get_current_span().is_recording()
        plan = self._plan(definition, degraded)
        limits = plan.limits
        # A version not ready yet (promoted elsewhere, evicted) is waited for at
        # most as long as the call may take, never for a whole compile.
        remaining_ms = invocation.remaining_ms()
        wait_s = (limits.timeout_ms if remaining_ms is None else remaining_ms) / 1000.0
        with tracer().start_as_current_span("module.load") if recording else NO_SPAN:
            compiled: CompiledModule = self._modules.peek(definition.sha256)
            if compiled is None:  # storage or compiling: the turn goes to others meanwhile
                compiled = await off_turn(
                    self._modules.get(
                        definition.sha256,
                        definition.wasm_blob_ref.key,
                        definition.abi,
                        within_s=wait_s,
                    )
                )
        remaining_ms = invocation.remaining_ms()
        caller_bound = remaining_ms is not None and remaining_ms < limits.timeout_ms
        if caller_bound:
            limits = replace(limits, timeout_ms=max(0, math.floor(remaining_ms or 0)))
        if limits.timeout_ms <= 0:
            raise InvocationFailure(
                ErrorKind.TIMEOUT, "the caller's deadline has passed", caller_side=True
            )
        deadline = time.monotonic() + limits.timeout_ms / 1000.0
        if invocation.deadline is not None:
            deadline = min(deadline, invocation.deadline)
        job = Job(
            compiled=compiled,
            input=invocation.input,
            limits=limits,
            context=invocation.context,
            deadline=deadline,
            include_logs=invocation.include_logs,
            bridge=plan.bridge,
            real_clock_and_random=plan.real_clock_and_random,
            config_json=definition.config_json,
            may_call_host=bool(definition.host_calls),
            background=invocation.background,
        )
        try:
            outcome = await self._scheduler.run(job)
        except InvocationFailure as failure:
            if caller_bound and failure.kind is ErrorKind.TIMEOUT:
                failure.caller_side = True
            raise
        outcome.resolved_version = definition.version
        outcome.metrics.duration_us = int((time.perf_counter() - started) * 1e6)
        return outcome
