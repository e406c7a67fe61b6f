"""What a guest asks for: ``{"service": str, "method": str, "body": {...}}``, validated.

The request comes from tenant code, so it is checked before anything else
looks at it: a size cap, strict JSON (no ``NaN``), no unknown fields, and
service and method names that are safe as URL path segments and metric labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app._ids import METHOD_PATTERN, SERVICE_PATTERN, fullmatch
from app.errors import HostCallErrorKind
from app.hostcalls._errors import Refused

__all__ = ["GuestRequest", "parse_request", "strict_loads"]

_REQUEST_KEYS = frozenset({"service", "method", "body"})


@dataclass(frozen=True, slots=True)
class GuestRequest:
    """A guest's host-call request, validated."""

    service: str
    method: str
    body: bytes
    """The request message, re-serialized as compact JSON."""

    @property
    def target(self) -> str:
        return f"{self.service}/{self.method}"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_loads(raw: bytes) -> Any:
    """``json.loads`` refusing ``NaN`` and ``Infinity``, which are not JSON."""
    return json.loads(raw, parse_constant=_reject_constant)


def parse_request(raw: bytes, max_bytes: int) -> GuestRequest:
    """Validate a guest's request; raises :class:`Refused` (``too_large``/``invalid_request``)."""
    if len(raw) > max_bytes:
        raise Refused(
            HostCallErrorKind.TOO_LARGE,
            f"request of {len(raw)} bytes exceeds the limit of {max_bytes} bytes",
        )
    invalid = HostCallErrorKind.INVALID_REQUEST
    try:
        document = strict_loads(raw)
    except (ValueError, RecursionError):
        raise Refused(invalid, "request is not valid UTF-8 JSON") from None
    if not isinstance(document, dict):
        raise Refused(invalid, 'request must be an object {"service", "method", "body"}')
    unknown = set(document) - _REQUEST_KEYS
    if unknown:
        raise Refused(invalid, f"unknown request field(s): {', '.join(sorted(unknown))[:200]}")
    service, method = document.get("service"), document.get("method")
    if not isinstance(service, str) or not fullmatch(SERVICE_PATTERN, service):
        raise Refused(invalid, "service must be a name like 'graph' ([A-Za-z0-9._-], 1-64)")
    if not isinstance(method, str) or not fullmatch(METHOD_PATTERN, method):
        raise Refused(invalid, "method must be a name like 'GetNode' ([A-Za-z0-9_], 1-64)")
    body = document.get("body", {})
    if not isinstance(body, dict):
        raise Refused(invalid, "body must be a JSON object (the request message)")
    # ASCII with \u escapes: a lone surrogate in a string stays encodable.
    encoded = json.dumps(body, separators=(",", ":")).encode()
    return GuestRequest(service=service, method=method, body=encoded)
