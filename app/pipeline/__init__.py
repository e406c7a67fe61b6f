"""The path of one invocation, in layers: observe -> shadow -> controls -> prepare -> schedule.

Each layer does one thing and hands the call to the next, like httpx's
``send``: :class:`Observe` resolves the call (through the rollout: rollback,
canary) and traces, logs and counts it; :class:`Shadow` may also run a sample
on the rollout's candidate after answering; :class:`Guard` asks the kill
switches, the tier's rate limit and the circuit breaker; :class:`Prepare`
loads the module and settles limits, deadline and host bridge; the sandbox's
:class:`~app.sandbox.Scheduler` runs it inline or on a lane. The layers hold
the parts they use and nothing else; which parts those are is decided once,
by :class:`~app.runtime.Runtime`.
"""

from app.pipeline._guard import Guard
from app.pipeline._observe import Observe, Resolve
from app.pipeline._prepare import Prepare
from app.pipeline._shadow import Shadow

__all__ = ["Guard", "Observe", "Prepare", "Resolve", "Shadow"]
