"""Kill switches and degradations, from a mounted file and from the admin RPC.

A switch can name a version, an extension, a tenant or a whole risk tier. Two
sources, merged: the file (a ConfigMap, hot-reloaded: the GitOps path) and the
admin switches, which ``app/fleet`` keeps in storage and hands to every
process. A call is refused when *either* source disables it, and runs under
the lowest ceiling any degradation from either gives; lifting an admin switch
never lifts a file one (only a change to the file does).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from app._hotfile import HotFile
from app.controls._ratelimit import Rate, TenantLimit
from app.limits import NO_LIMITS, DeclaredLimits

__all__ = [
    "PLATFORM_OWNER",
    "Controls",
    "ControlsDocument",
    "Decision",
    "Degradation",
    "Switch",
    "Target",
    "parse_controls",
]

TargetKind = Literal["version", "extension", "tenant", "tier"]


PLATFORM_OWNER = "_platform"
"""``owner`` of a target that means platform extensions only."""


class Target(BaseModel):
    """Exactly one of: extension+version, extension, tenant, risk tier.

    ``owner`` narrows an extension or version target to the extension that
    tenant owns (``_platform``: the platform one); without it the switch covers
    that id whoever owns it, which is what an operator pulling a switch at
    3 a.m. usually means.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    extension_id: str | None = Field(default=None, max_length=64)
    version: str | None = Field(default=None, max_length=64)
    owner: str | None = Field(default=None, max_length=128)
    tenant_id: str | None = Field(default=None, max_length=128)
    risk_tier: str | None = Field(default=None, max_length=32)

    @model_validator(mode="after")
    def _exactly_one(self) -> Target:
        kinds = [
            self.extension_id is not None,
            self.tenant_id is not None,
            self.risk_tier is not None,
        ]
        if sum(kinds) != 1 or (
            self.extension_id is None and (self.version is not None or self.owner is not None)
        ):
            raise ValueError(
                "name exactly one of extension_id[+version][+owner], tenant_id, risk_tier"
            )
        return self

    @property
    def kind(self) -> TargetKind:
        if self.extension_id is not None:
            return "version" if self.version is not None else "extension"
        return "tenant" if self.tenant_id is not None else "tier"

    def covers(
        self, extension_id: str, version: str, tier: str, tenant: str, owner: str = ""
    ) -> bool:
        """``owner`` is the extension's owning tenant, ``""`` for a platform one."""
        if self.extension_id is not None:
            return (
                self.extension_id == extension_id
                and self.version in (None, version)
                and self.owner in (None, owner or PLATFORM_OWNER)
            )
        if self.tenant_id is not None:
            return self.tenant_id == tenant
        return self.risk_tier == tier


class _Provenance(Target):
    """Who set an admin control and until when (empty for the file's)."""

    set_by: str | None = Field(default=None, max_length=256)
    set_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    """After this the fleet drops it (admin RPC ``ttl_seconds``)."""


class Switch(_Provenance):
    """A kill switch: the target plus the reason callers are shown."""

    reason: str = Field(default="disabled by an operator", max_length=512)


class Degradation(_Provenance):
    """Lowered ceilings for an extension or a tier."""

    ceilings: DeclaredLimits
    reason: str = Field(default="", max_length=512)


class ControlsDocument(BaseModel):
    """The mounted file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    disabled: tuple[Switch, ...] = ()
    degraded: tuple[Degradation, ...] = ()
    tenant_limits: tuple[TenantLimit, ...] = Field(default=(), max_length=100_000)

    @model_validator(mode="after")
    def _no_provenance(self) -> ControlsDocument:
        """The file's switches last until the file changes: an ``expires_at`` here would
        be silently ignored, so it is refused instead."""
        for control in (*self.disabled, *self.degraded):
            if control.set_by or control.set_at or control.expires_at:
                raise ValueError(
                    "set_by, set_at and expires_at belong to admin controls (the admin RPC);"
                    " a switch in this file holds until it is removed"
                )
        return self


def parse_controls(text: str) -> ControlsDocument:
    return ControlsDocument.model_validate(yaml.safe_load(text) or {})


@dataclass(slots=True)
class Decision:
    """What controls say about one invocation."""

    disabled_reason: str | None = None
    ceilings: list[DeclaredLimits] = field(default_factory=list)


class Controls:
    """File switches (hot-reloaded) plus the admin switches (kept by ``app/fleet``)."""

    def __init__(self, path: Path | None, *, check_interval_s: float = 1.0) -> None:
        self.file = HotFile(
            path, parse_controls, ControlsDocument(), name="controls", interval_s=check_interval_s
        )
        self._lock = threading.Lock()
        self._admin_disabled: dict[Target, Switch] = {}
        self._admin_degraded: dict[Target, Degradation] = {}
        self._limits: tuple[ControlsDocument, dict[str, Rate]] | None = None

    def _key(self, target: Target) -> Target:
        return Target(**target.model_dump(include=set(Target.model_fields)))

    def disable(self, switch: Switch) -> None:
        with self._lock:
            self._admin_disabled[self._key(switch)] = switch

    def enable(self, target: Target) -> bool:
        with self._lock:
            return self._admin_disabled.pop(self._key(target), None) is not None

    def degrade(self, degradation: Degradation) -> None:
        with self._lock:
            key = self._key(degradation)
            if degradation.ceilings == NO_LIMITS:
                self._admin_degraded.pop(key, None)
            else:
                self._admin_degraded[key] = degradation

    def replace_admin(self, disabled: Iterable[Switch], degraded: Iterable[Degradation]) -> None:
        """Make the admin switches exactly these (the fleet's state, read from storage)."""
        switches = {self._key(s): s for s in disabled}
        degradations = {self._key(d): d for d in degraded if d.ceilings != NO_LIMITS}
        with self._lock:
            self._admin_disabled = switches
            self._admin_degraded = degradations

    def listing(self) -> tuple[list[tuple[Switch, str]], list[tuple[Degradation, str]]]:
        """Active switches and degradations with their source ("config" or "admin")."""
        document = self.file.current()
        with self._lock:
            disabled = [(s, "config") for s in document.disabled] + [
                (s, "admin") for s in self._admin_disabled.values()
            ]
            degraded = [(d, "config") for d in document.degraded] + [
                (d, "admin") for d in self._admin_degraded.values()
            ]
        return disabled, degraded

    def tenant_limit(self, tenant: str) -> Rate | None:
        """The tenant's own rate limit from the file's ``tenant_limits:``, if it has one."""
        document = self.file.current()
        limits = self._limits
        if limits is None or limits[0] is not document:  # indexed once per reload
            limits = (document, {limit.tenant_id: limit for limit in document.tenant_limits})
            self._limits = limits
        return limits[1].get(tenant)

    def decide(
        self, extension_id: str, version: str, tier: str, tenant: str, owner: str = ""
    ) -> Decision:
        """Whether this invocation may run, and under which lowered ceilings.

        ``tenant`` is the caller's; ``owner`` the extension's (``""``: platform).
        """
        document = self.file.current()
        with self._lock:
            switches: Iterable[Switch] = (*document.disabled, *self._admin_disabled.values())
            degradations: Iterable[Degradation] = (
                *document.degraded,
                *self._admin_degraded.values(),
            )
        decision = Decision()
        for switch in switches:
            if switch.covers(extension_id, version, tier, tenant, owner):
                decision.disabled_reason = switch.reason
                break
        decision.ceilings = [
            d.ceilings for d in degradations if d.covers(extension_id, version, tier, tenant, owner)
        ]
        return decision
