"""Identifier shapes, and the one way to check a string against them.

Python's ``re.match(r"^...$", s)`` accepts ``s`` with a trailing newline,
because ``$`` also matches just before a final ``\\n``. A request id or a
host-call method with that newline then passed validation and broke a header
or a metric label further on. Every id-like check in the service therefore
goes through :func:`fullmatch`, which only accepts a match of the whole
string (and refuses anything that is not a ``str``).

The patterns keep their ``^...$`` anchors so they can also be given to
pydantic's ``Field(pattern=...)``: pydantic validates with Rust's ``regex``
crate, where ``$`` is the end of the text (it rejects ``"id\\n"``, and a test
pins that), while ``\\Z`` is a syntax error there.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache

__all__ = [
    "BLOB_KEY_PATTERN",
    "HOST_CALL_PATTERN",
    "ID_PATTERN",
    "KEY_ID_PATTERN",
    "METHOD_PATTERN",
    "POLICY_ALLOW_PATTERN",
    "REQUEST_ID_PATTERN",
    "S3_PREFIX_PATTERN",
    "SERVICE_PATTERN",
    "SHA256_PATTERN",
    "TENANT_PATTERN",
    "TIER_PATTERN",
    "VERSION_PATTERN",
    "fullmatch",
    "new_request_id",
]

ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
"""An extension id: also a storage path segment."""
VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$"
"""A version: also a storage path segment."""
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
"""A tenant id (a token's ``tenant_id`` claim, an owner): also a storage path segment."""
TIER_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
"""A risk tier name."""
SHA256_PATTERN = r"^[0-9a-f]{64}$"
BLOB_KEY_PATTERN = r"^[A-Za-z0-9._/+-]+$"
"""A module blob's key relative to the store's prefix (traversal is checked apart)."""
S3_PREFIX_PATTERN = r"^([A-Za-z0-9._-]+/)*$"
HOST_CALL_PATTERN = r"^[a-z0-9.*-]{1,64}/[A-Za-z0-9*]{1,64}$"
"""A ``service/method`` (wildcards allowed) a definition asks to call."""
POLICY_ALLOW_PATTERN = r"^[A-Za-z0-9.*_-]{1,64}/[A-Za-z0-9*_]{1,64}$"
"""A ``service/method`` (wildcards allowed) in a risk tier's allowlist."""
SERVICE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""A host-call service name: a URL path segment."""
METHOD_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
"""A host-call method name: a URL path segment."""
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
"""A caller-chosen request id: safe in a header, a log line and an error."""
KEY_ID_PATTERN = REQUEST_ID_PATTERN
"""A host-call signing key's ``kid``: in every token's header and the JWKS, so the same rule."""


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def fullmatch(pattern: str, value: object) -> bool:
    """Whether ``value`` is a ``str`` and the whole of it matches ``pattern``."""
    return isinstance(value, str) and _compiled(pattern).fullmatch(value) is not None


_IDS_PER_READ = 256
_unused_ids: list[str] = []


def new_request_id() -> str:
    """A fresh request id: 32 hex digits from the OS's randomness, like ``uuid4().hex``
    (which matches ``REQUEST_ID_PATTERN`` too).

    The randomness is read for 256 ids at a time: one system call per id was
    a visible share of a small call's CPU. ``list.pop`` is atomic, so threads
    never get the same id; two refilling at once only read a little extra.
    """
    try:
        return _unused_ids.pop()
    except IndexError:
        digits = os.urandom(16 * _IDS_PER_READ).hex()
        _unused_ids.extend(digits[i : i + 32] for i in range(32, len(digits), 32))
        return digits[:32]


os.register_at_fork(after_in_child=_unused_ids.clear)  # a forked worker reads its own
