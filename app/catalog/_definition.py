"""``ExtensionDefinition``: what Transformation publishes when it promotes a version.

Definitions are untrusted input (they come from a bucket other teams write
to), so validation is strict: unknown fields, odd identifiers and oversized
config are rejected rather than guessed at.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from app._ids import (
    BLOB_KEY_PATTERN,
    HOST_CALL_PATTERN,
    ID_PATTERN,
    SHA256_PATTERN,
    TENANT_PATTERN,
    TIER_PATTERN,
    VERSION_PATTERN,
    fullmatch,
)
from app.limits import NO_LIMITS, DeclaredLimits

__all__ = [
    "MAX_CONFIG_BYTES",
    "Abi",
    "BlobRef",
    "DeclaredLimits",
    "ExtensionDefinition",
    "PromotedPointer",
]

MAX_CONFIG_BYTES = 64 * 1024

Abi = Literal["raw", "wasi-stdio", "component"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class BlobRef(_Strict):
    """Where the module bytes live; ``key`` is relative to the store's prefix."""

    bucket: str = Field(default="", max_length=63)
    key: str = Field(min_length=1, max_length=512, pattern=BLOB_KEY_PATTERN)

    @field_validator("key")
    @classmethod
    def _no_traversal(cls, key: str) -> str:
        if key.startswith("/") or any(part in ("", ".", "..") for part in key.split("/")):
            raise ValueError("key must be a relative path without '.', '..' or empty segments")
        return key


class ExtensionDefinition(_Strict):
    """One promotable version of one extension."""

    id: str = Field(pattern=ID_PATTERN)
    version: str = Field(pattern=VERSION_PATTERN)
    owner: str | None = Field(default=None, pattern=TENANT_PATTERN)
    """The tenant that owns this extension; ``None`` for a platform extension."""
    abi: Abi
    risk_tier: str = Field(default="pure", pattern=TIER_PATTERN)
    wasm_blob_ref: BlobRef
    sha256: str = Field(pattern=SHA256_PATTERN)
    limits: DeclaredLimits = NO_LIMITS
    """What it asks for; ``None`` fields get the runtime's defaults."""
    host_calls: tuple[str, ...] = Field(default=(), max_length=64)
    config: dict[str, Any] = Field(default_factory=dict)
    description: str = Field(default="", max_length=2048)

    @field_validator("host_calls")
    @classmethod
    def _host_call_patterns(cls, calls: tuple[str, ...]) -> tuple[str, ...]:
        for call in calls:
            if not fullmatch(HOST_CALL_PATTERN, call):
                raise ValueError(f"host call {call[:80]!r} is not 'service/method'")
        return calls

    @field_validator("config")
    @classmethod
    def _config_size(cls, config: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(config)) > MAX_CONFIG_BYTES:
            raise ValueError(f"config is larger than {MAX_CONFIG_BYTES} bytes")
        return config

    @cached_property
    def config_json(self) -> bytes:
        """``config`` as the guest reads it: compact UTF-8 JSON, computed once."""
        return json.dumps(self.config, separators=(",", ":"), ensure_ascii=False).encode()

    @property
    def owner_key(self) -> str:
        """The owner as the catalog keys it: the tenant, or ``""`` for the platform."""
        return self.owner or ""

    @classmethod
    def from_json(cls, data: bytes) -> ExtensionDefinition:
        """Parse and validate; raises ``ValueError`` (pydantic's ValidationError) when bad."""
        return cls.model_validate_json(data, strict=False)


class PromotedPointer(_Strict):
    """``{id}/promoted.json``: which version a request without a version gets, and
    how a new one is rolled out (``app/rollout``): shadowed, canaried, rolled back."""

    version: str = Field(pattern=VERSION_PATTERN)
    previous: str | None = Field(default=None, pattern=VERSION_PATTERN)
    """Served instead when ``version`` fails for many tenants within the window."""
    promoted_at: AwareDatetime | None = None
    rollback_window_s: int = Field(default=3600, ge=0, le=30 * 86400)
    candidate: str | None = Field(default=None, pattern=VERSION_PATTERN)
    """The next version, tried on live traffic before it is promoted."""
    shadow_per_mille: int = Field(default=0, ge=0, le=1000)
    """Live calls also run on the candidate after answering, per thousand."""
    canary_percent: int = Field(default=0, ge=0, le=100)
    """Share of tenants (a stable hash) the candidate answers."""
