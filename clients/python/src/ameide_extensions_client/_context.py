"""Building the ``ExecutionContext`` (and deadline, and token) from an incoming request.

A controller serving a request calls the runtime *on behalf of* that request:
same tenant, organization and user, same request id for the logs, the caller's
bearer token forwarded, and no more time than the caller has left. These
helpers read all of that from a connectrpc ``RequestContext`` or from any
headers mapping (Starlette's ``request.headers``, a ``dict``, gRPC metadata as
pairs), so a handler needs one line::

    result = await client.invoke("hello", {"name": "Ada"}, context=forward(ctx, caller="ctl"))
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from connectrpc.request import RequestContext

from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb

TENANT_HEADER = "x-ameide-tenant-id"
ORGANIZATION_HEADER = "x-ameide-organization-id"
USER_HEADER = "x-ameide-user-id"
REQUEST_ID_HEADER = "x-request-id"

_GRPC_TIMEOUT = re.compile(r"^(\d{1,8})([HMSmun])$")
_GRPC_UNIT_MS = {"H": 3_600_000.0, "M": 60_000.0, "S": 1_000.0, "m": 1.0, "u": 1e-3, "n": 1e-6}
_CONNECT_TIMEOUT = re.compile(r"^\d{1,10}$")

RequestSource: TypeAlias = RequestContext[Any, Any] | Mapping[str, str] | Iterable[tuple[str, str]]
"""What the helpers read: a connectrpc ``RequestContext`` or the incoming headers."""


def _headers(source: RequestSource) -> dict[str, str]:
    """Lower-cased header names to their first value."""
    items: Iterable[tuple[str, str]]
    if isinstance(source, RequestContext):
        items = source.request_headers.items()
    elif isinstance(source, Mapping):
        items = source.items()
    else:
        items = source
    headers: dict[str, str] = {}
    for key, value in items:
        # gRPC metadata may hold bytes for ``-bin`` keys; only text headers matter here.
        headers.setdefault(str(key).lower(), str(value))
    return headers


def bearer_token(source: RequestSource) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, if any."""
    value = _headers(source).get("authorization", "")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def remaining_ms(source: RequestSource) -> float | None:
    """How much of the incoming request's deadline is left, in ms (None: no deadline).

    A ``RequestContext`` knows it exactly; for a headers mapping the
    ``Connect-Timeout-Ms`` or ``grpc-timeout`` header is read as "from now",
    so call it when the request arrives.
    """
    if isinstance(source, RequestContext):
        return source.timeout_ms
    headers = _headers(source)
    connect = headers.get("connect-timeout-ms", "").strip()
    if _CONNECT_TIMEOUT.fullmatch(connect):
        return float(connect)
    match = _GRPC_TIMEOUT.fullmatch(headers.get("grpc-timeout", "").strip())
    if match:
        return int(match.group(1)) * _GRPC_UNIT_MS[match.group(2)]
    return None


def deadline_from_request(source: RequestSource) -> float | None:
    """The incoming request's deadline as a ``time.monotonic()`` instant (None: none)."""
    left = remaining_ms(source)
    return None if left is None else time.monotonic() + left / 1000.0


def context_from_request(
    source: RequestSource,
    *,
    tenant_id: str | None = None,
    organization_id: str | None = None,
    user_id: str | None = None,
    request_id: str | None = None,
    caller: str = "",
    attributes: Mapping[str, str] | None = None,
) -> runtime_pb.ExecutionContext:
    """An ``ExecutionContext`` for calling the runtime on behalf of an incoming request.

    Tenant, organization and user come from ``x-ameide-tenant-id``,
    ``x-ameide-organization-id`` and ``x-ameide-user-id``, the request id from
    ``x-request-id``. A keyword argument wins over its header: pass the
    identity your own authentication verified (token claims) when you have
    it; the runtime also checks the context against the forwarded token.
    ``caller`` names the calling service (for example ``"process-controller"``).
    """
    headers = _headers(source)
    return runtime_pb.ExecutionContext(
        tenant_id=tenant_id if tenant_id is not None else headers.get(TENANT_HEADER, ""),
        organization_id=(
            organization_id if organization_id is not None else headers.get(ORGANIZATION_HEADER, "")
        ),
        user_id=user_id if user_id is not None else headers.get(USER_HEADER, ""),
        request_id=request_id if request_id is not None else headers.get(REQUEST_ID_HEADER, ""),
        caller=caller,
        attributes=dict(attributes or {}),
    )


@dataclass(frozen=True, slots=True)
class Forwarded:
    """Everything a call on behalf of an incoming request carries.

    Pass it as ``context=`` to :meth:`ExtensionsClient.invoke`: the context
    goes in the request, the token in ``Authorization`` (unless the call names
    one), and the deadline bounds the call's timeout.
    """

    context: runtime_pb.ExecutionContext
    token: str | None = None
    deadline: float | None = None
    """``time.monotonic()`` instant the incoming request must be answered by."""

    def remaining_ms(self) -> float | None:
        """Milliseconds left before ``deadline`` (negative once it passed)."""
        if self.deadline is None:
            return None
        return (self.deadline - time.monotonic()) * 1000.0


def forward(
    source: RequestSource,
    *,
    tenant_id: str | None = None,
    organization_id: str | None = None,
    user_id: str | None = None,
    request_id: str | None = None,
    caller: str = "",
    attributes: Mapping[str, str] | None = None,
    forward_token: bool = True,
) -> Forwarded:
    """Context, bearer token and deadline of an incoming request, to call the runtime with."""
    return Forwarded(
        context=context_from_request(
            source,
            tenant_id=tenant_id,
            organization_id=organization_id,
            user_id=user_id,
            request_id=request_id,
            caller=caller,
            attributes=attributes,
        ),
        token=bearer_token(source) if forward_token else None,
        deadline=deadline_from_request(source),
    )
