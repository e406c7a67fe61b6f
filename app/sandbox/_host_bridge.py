"""What the sandbox needs from whoever answers a guest's ``host_call``.

The sandbox only moves bytes between guest memory and a :class:`HostBridge`;
policy (risk-tier allowlists), token minting and HTTP live in
``app.hostcalls``, which implements this protocol without the sandbox
importing it.
"""

from __future__ import annotations

from typing import Protocol

from app.errors import HostCallRefusal
from app.invocation import ExecutionContext

__all__ = ["HostBridge"]


class HostBridge(Protocol):
    """Answers one guest host call; called on the worker thread running the guest.

    Return the response bytes the guest should see, or a refusal it is expected
    to handle (:class:`app.errors.HostCallRefusal`; the JSON ABIs read it as
    ``{"error": ...}``, a component as its typed ``host-error``). Raise
    ``InvocationFailure`` to end the invocation instead, with one exception:
    ``HOST_CALL_DENIED`` is turned into a ``{"error": {"kind": "denied", ...}}``
    response for the guest, exactly as when no bridge is configured or the call
    budget is spent, so a denial is always something the guest can handle.
    """

    def call(
        self, request: bytes, context: ExecutionContext, remaining_ms: float
    ) -> bytes | HostCallRefusal:
        """Perform ``request`` for ``context`` within ``remaining_ms``."""
        ...
