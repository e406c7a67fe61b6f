"""The rollout layer: the call runs as guarded, and a sample is shadowed on the candidate.

Between :class:`Observe` (which resolved the version through
:meth:`~app.rollout.Rollouts.resolve`: rollback, canary) and :class:`Guard`:
the live call goes through the guard unchanged, and once it has an answer a
shadow of the candidate may start in the background (``app/rollout``).
"""

from __future__ import annotations

from app.catalog import ExtensionDefinition
from app.invocation import Invocation, Outcome
from app.pipeline._guard import Guard
from app.rollout import Rollouts

__all__ = ["Shadow"]


class Shadow:
    """Runs the call through ``guard``; hands a sample to the candidate afterwards."""

    def __init__(self, rollouts: Rollouts, guard: Guard) -> None:
        self._rollouts = rollouts
        self._guard = guard

    async def run(self, definition: ExtensionDefinition, invocation: Invocation) -> Outcome:
        return await self._rollouts.run(definition, invocation, self._guard.run)
