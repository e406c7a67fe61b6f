"""The controls layer: kill switches, the tier's rate limit and the circuit breaker.

Asked in that order, cheapest and most absolute first: an operator's switch
always wins; the tier's rate limit can only be taken now that the tier is
known; the breaker is asked last because a permit is a promise to report back.
The breaker learns the outcome afterwards, and only guest faults count
against a version: a timeout the caller's own deadline imposed, or that
passed in the queue, says nothing about the guest.
"""

from __future__ import annotations

from app.catalog import ExtensionDefinition
from app.controls import GUEST_FAULTS, Breakers, Controls, RateLimiter, Refusal
from app.errors import ErrorKind, InvocationFailure
from app.invocation import Invocation, Outcome
from app.pipeline._prepare import Prepare

__all__ = ["Guard"]


class Guard:
    """Decides whether a resolved call may run, then runs it and tells the breaker."""

    def __init__(
        self, controls: Controls, rate_limits: RateLimiter, breakers: Breakers, prepare: Prepare
    ) -> None:
        self._controls = controls
        self._rate_limits = rate_limits
        self._breakers = breakers
        self._prepare = prepare

    async def run(self, definition: ExtensionDefinition, invocation: Invocation) -> Outcome:
        tenant = invocation.context.tenant_id
        decision = self._controls.decide(
            definition.id, definition.version, definition.risk_tier, tenant, definition.owner_key
        )
        if decision.disabled_reason is not None:
            raise InvocationFailure(
                ErrorKind.EXTENSION_DISABLED,
                f"{definition.id} {definition.version} is disabled: {decision.disabled_reason}",
            )
        self._rate_limits.check_tier(tenant, definition.risk_tier)
        permit = self._breakers.allow(
            (definition.owner_key, definition.id, definition.version), tenant
        )
        if isinstance(permit, Refusal):
            whose = "for your tenant" if permit.scope == "tenant" else "for many tenants"
            raise InvocationFailure(
                ErrorKind.UNAVAILABLE,
                f"{definition.id} {definition.version} is failing repeatedly {whose}; its "
                "circuit breaker is open, retry later",
            )
        failed = False
        try:
            return await self._prepare.run(definition, invocation, decision.ceilings)
        except InvocationFailure as failure:
            failed = failure.kind in GUEST_FAULTS and not failure.caller_side
            raise
        finally:
            self._breakers.record(permit, failed)
