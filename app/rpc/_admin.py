"""The ``ExtensionRuntimeAdmin`` handlers: what operators use at 3 a.m.

Switches and degradations set here are written to storage and applied by
every process of the fleet (``app/fleet``), this one at once; when storage
cannot take them the call fails with ``unavailable`` and nothing changed (the
mounted file is the path that works without storage).

Every call needs a verified token carrying the admin scope, even when caller
auth is off for local development: a kill switch is not something an
anonymous caller should be able to flip. The layers around these handlers
(``_layers``) check both before the body is read: no or a bad token is
``unauthenticated``, as on the runtime RPC; a good token without the scope is
``permission_denied``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from connectrpc.request import RequestContext
from protobuf import Oneof
from pydantic import ValidationError

from app._ids import ID_PATTERN, TENANT_PATTERN, VERSION_PATTERN, fullmatch
from app.auth import PermissionDenied
from app.catalog import Candidate, PromotedPointer, set_candidate
from app.controls import Degradation, Switch, Target
from app.errors import ErrorKind, InvocationFailure
from app.fleet import TooManySwitches
from app.gen.ameide.extensions.v1 import admin_pb
from app.gen.ameide.extensions.v1.admin_connect import ExtensionRuntimeAdmin
from app.limits import NO_LIMITS, DeclaredLimits
from app.rollout import Diff, RollbackRecord
from app.rpc._context import current_call
from app.rpc._errors import InvalidRequest
from app.telemetry import get_logger

if TYPE_CHECKING:
    from app.runtime import Runtime

__all__ = ["AdminService"]

_log = get_logger("app.rpc.admin")
T = TypeVar("T")


def _target(wire: admin_pb.ControlTarget | None) -> Target:
    chosen: Any = wire.target if wire is not None else None
    field: str | None = chosen.field if chosen is not None else None
    value: Any = chosen.value if chosen is not None else None
    owner = (wire.owner or None) if wire is not None else None
    try:
        if field == "version":
            return Target(extension_id=value.extension_id, version=value.version, owner=owner)
        if field == "extension_id":
            return Target(extension_id=value, owner=owner)
        if field == "tenant_id":
            return Target(tenant_id=value)
        if field == "risk_tier":
            return Target(risk_tier=value)
    except ValidationError:
        pass
    raise InvalidRequest("target must name exactly one thing")


def _operator() -> str:
    """Who is acting, for the audit log lines."""
    principal = current_call().principal
    if principal is None:  # the admin-scope layer lets no call through without one
        raise PermissionDenied("an admin token is required")
    return principal.subject


def _extension_key(extension_id: str, owner: str) -> tuple[str, str]:
    if not fullmatch(ID_PATTERN, extension_id):
        raise InvalidRequest("extension_id is not an extension id")
    if owner and not fullmatch(TENANT_PATTERN, owner):
        raise InvalidRequest("owner is not a tenant id")
    return owner, extension_id


def _check_rollout(request: admin_pb.SetRolloutRequest, candidate: str | None) -> None:
    if candidate is not None and not fullmatch(VERSION_PATTERN, candidate):
        raise InvalidRequest("candidate_version is not a version")
    if request.shadow_per_mille > 1000:
        raise InvalidRequest("shadow_per_mille is at most 1000")
    if request.canary_percent > 100:
        raise InvalidRequest("canary_percent is at most 100")
    if candidate is None and (request.shadow_per_mille or request.canary_percent):
        raise InvalidRequest("shadow and canary shares need a candidate_version")


def _wire_target(target: Target) -> admin_pb.ControlTarget:
    chosen: Any
    if target.kind == "version":
        ref = admin_pb.VersionRef(
            extension_id=target.extension_id or "", version=target.version or ""
        )
        chosen = Oneof("version", ref)
    elif target.kind == "extension":
        chosen = Oneof("extension_id", target.extension_id or "")
    elif target.kind == "tenant":
        chosen = Oneof("tenant_id", target.tenant_id or "")
    else:
        chosen = Oneof("risk_tier", target.risk_tier or "")
    return admin_pb.ControlTarget(target=chosen, owner=target.owner or "")


def _provenance(control: Switch | Degradation) -> dict[str, Any]:
    return {
        "set_by": control.set_by or "",
        "set_at": control.set_at.isoformat() if control.set_at else "",
        "expires_at": control.expires_at.isoformat() if control.expires_at else "",
    }


def _wire_diff(diff: Diff) -> admin_pb.ShadowDiff:
    return admin_pb.ShadowDiff(
        at=diff.at.isoformat(),
        promoted_version=diff.promoted,
        candidate_version=diff.candidate,
        input_bytes=diff.input_bytes,
        live=diff.live,
        shadow=diff.shadow,
        live_sha256=diff.live_sha256,
        shadow_sha256=diff.shadow_sha256,
        live_bytes=diff.live_bytes,
        shadow_bytes=diff.shadow_bytes,
    )


def _wire_rollback(record: RollbackRecord) -> admin_pb.Rollback:
    return admin_pb.Rollback(
        from_version=record.from_version,
        to_version=record.to_version,
        reason=record.reason,
        at=record.at.isoformat(),
    )


def _ceilings(wire: admin_pb.LimitCeilings | None) -> DeclaredLimits:
    if wire is None:
        return NO_LIMITS
    return DeclaredLimits(
        fuel=wire.fuel or None,
        memory_bytes=wire.memory_bytes or None,
        timeout_ms=wire.timeout_ms or None,
        output_bytes=wire.output_bytes or None,
        max_host_calls=wire.max_host_calls if wire.degrade_host_calls else None,
    )


def _wire_ceilings(ceilings: DeclaredLimits) -> admin_pb.LimitCeilings:
    return admin_pb.LimitCeilings(
        fuel=ceilings.fuel or 0,
        memory_bytes=ceilings.memory_bytes or 0,
        timeout_ms=ceilings.timeout_ms or 0,
        output_bytes=ceilings.output_bytes or 0,
        max_host_calls=ceilings.max_host_calls or 0,
        degrade_host_calls=ceilings.max_host_calls is not None,
    )


class AdminService(ExtensionRuntimeAdmin):
    """Implements ``ameide.extensions.v1.ExtensionRuntimeAdmin``."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    @staticmethod
    async def _guarded(change: Awaitable[T]) -> T:
        """A fleet change, with a full table as a clear refusal (storage trouble is
        ``unavailable`` through the usual mapping of :class:`InvocationFailure`)."""
        try:
            return await change
        except TooManySwitches as exc:
            raise InvalidRequest(str(exc)) from None

    async def list_extensions(
        self, request: admin_pb.ListExtensionsRequest, ctx: RequestContext[Any, Any], /
    ) -> admin_pb.ListExtensionsResponse:
        states = [
            admin_pb.ExtensionState(
                extension_id=view.extension_id,
                owner=view.owner,
                promoted_version=view.promoted or "",
                versions=[
                    admin_pb.VersionState(
                        version=v.definition.version,
                        risk_tier=v.definition.risk_tier,
                        sha256=v.definition.sha256,
                        abi=v.definition.abi,
                        cached=v.cached,
                        disabled=v.disabled_reason is not None,
                        disabled_reason=v.disabled_reason or "",
                        breaker=admin_pb.BreakerState(int(v.breaker)) if v.breaker else None,
                        open_tenant_breakers=v.open_tenant_breakers,
                    )
                    for v in view.versions
                ],
            )
            for view in self._runtime.describe()
        ]
        return admin_pb.ListExtensionsResponse(extensions=states)

    async def list_controls(
        self, request: admin_pb.ListControlsRequest, ctx: RequestContext[Any, Any], /
    ) -> admin_pb.ListControlsResponse:
        disabled, degraded = self._runtime.controls.listing()
        return admin_pb.ListControlsResponse(
            disabled=[
                admin_pb.Control(
                    target=_wire_target(s), reason=s.reason, source=source, **_provenance(s)
                )
                for s, source in disabled
            ],
            degraded=[
                admin_pb.Control(
                    target=_wire_target(d),
                    reason=d.reason,
                    source=source,
                    ceilings=_wire_ceilings(d.ceilings),
                    **_provenance(d),
                )
                for d, source in degraded
            ],
        )

    async def disable(
        self, request: admin_pb.DisableRequest, ctx: RequestContext[Any, Any], /
    ) -> admin_pb.DisableResponse:
        operator = _operator()
        target = _target(request.target)
        reason = request.reason.strip()[:512] or "disabled by an operator"
        await self._guarded(
            self._runtime.fleet.disable(
                Switch(**target.model_dump(), reason=reason),
                operator=operator,
                ttl_s=request.ttl_seconds,
            )
        )
        _log.warning(
            "admin.disabled",
            target=target.model_dump(exclude_none=True),
            reason=reason,
            operator=operator,
            ttl_s=request.ttl_seconds or None,
        )
        return admin_pb.DisableResponse()

    async def enable(
        self, request: admin_pb.EnableRequest, ctx: RequestContext[Any, Any], /
    ) -> admin_pb.EnableResponse:
        operator = _operator()
        target = _target(request.target)
        removed = await self._guarded(self._runtime.fleet.enable(target))
        _log.warning(
            "admin.enabled",
            target=target.model_dump(exclude_none=True),
            removed=removed,
            operator=operator,
        )
        return admin_pb.EnableResponse(removed=removed)

    async def degrade(
        self, request: admin_pb.DegradeRequest, ctx: RequestContext[Any, Any], /
    ) -> admin_pb.DegradeResponse:
        operator = _operator()
        target = _target(request.target)
        if target.kind not in ("extension", "tier", "version"):
            raise InvalidRequest("degrade an extension, version or tier")
        ceilings = _ceilings(request.ceilings)
        await self._guarded(
            self._runtime.fleet.degrade(
                Degradation(**target.model_dump(), ceilings=ceilings, reason=request.reason[:512]),
                operator=operator,
                ttl_s=request.ttl_seconds,
            )
        )
        _log.warning(
            "admin.degraded",
            target=target.model_dump(exclude_none=True),
            ceilings=ceilings.model_dump(exclude_none=True),
            operator=operator,
        )
        return admin_pb.DegradeResponse()

    def _rollout_state(
        self, key: tuple[str, str], pointer: PromotedPointer
    ) -> admin_pb.RolloutState:
        rollouts = self._runtime.rollouts
        rollback = rollouts.rolled_back(key)
        counts: dict[str, int] = {}
        for (_, _, result), n in rollouts.shadow_counts(key).items():
            counts[result] = counts.get(result, 0) + n
        return admin_pb.RolloutState(
            extension_id=key[1],
            owner=key[0],
            promoted_version=pointer.version,
            previous_version=pointer.previous or "",
            candidate_version=pointer.candidate or "",
            shadow_per_mille=pointer.shadow_per_mille,
            canary_percent=pointer.canary_percent,
            shadow_match=counts.get("match", 0),
            shadow_differ=counts.get("differ", 0),
            shadow_dropped=counts.get("dropped", 0),
            shadow_failed=counts.get("failed", 0),
            diffs=[_wire_diff(d) for d in rollouts.diffs(key)],
            rollback=_wire_rollback(rollback) if rollback is not None else None,
        )

    async def list_rollouts(
        self, request: admin_pb.ListRolloutsRequest, ctx: RequestContext[Any, Any], /
    ) -> admin_pb.ListRolloutsResponse:
        states = [
            self._rollout_state(key, pointer)
            for key, pointer in sorted(self._runtime.catalog.pointers().items())
            if pointer.candidate is not None
            or pointer.previous is not None
            or self._runtime.rollouts.rolled_back(key) is not None
        ]
        return admin_pb.ListRolloutsResponse(rollouts=states)

    async def set_rollout(
        self, request: admin_pb.SetRolloutRequest, ctx: RequestContext[Any, Any], /
    ) -> admin_pb.SetRolloutResponse:
        operator = _operator()
        key = _extension_key(request.extension_id, request.owner)
        candidate = request.candidate_version or None
        _check_rollout(request, candidate)
        promoted, versions = self._runtime.catalog.extensions().get(key, (None, []))
        if promoted is None:
            raise InvalidRequest("nothing is promoted for this extension: publish --promote first")
        if candidate == promoted:
            raise InvalidRequest(f"{candidate} is the promoted version, not a candidate")
        if candidate is not None and candidate not in versions:
            raise InvalidRequest(f"no published version {candidate} of this extension is loaded")
        shares = Candidate(request.shadow_per_mille, request.canary_percent)
        try:
            await set_candidate(self._runtime.settings, key[0], key[1], candidate, shares)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        except OSError:
            raise InvocationFailure(
                ErrorKind.UNAVAILABLE, "the extensions directory could not be written"
            ) from None
        await self._runtime.refresh_extension(key[1], key[0])
        try:
            await self._runtime.fleet.announce_promotion(key[1], key[0])
        except InvocationFailure as failure:
            _log.warning("admin.rollout_not_announced", extension=key[1], reason=failure.message)
        _log.warning(
            "admin.rollout_set",
            extension=key[1],
            owner=key[0] or "_platform",
            candidate=candidate,
            shadow_per_mille=shares.shadow_per_mille,
            canary_percent=shares.canary_percent,
            operator=operator,
        )
        pointer = self._runtime.catalog.pointers().get(key)
        if pointer is None:  # removed from storage meanwhile: say what was asked for
            raise InvocationFailure(ErrorKind.UNAVAILABLE, "the extension is no longer in storage")
        return admin_pb.SetRolloutResponse(rollout=self._rollout_state(key, pointer))

    async def clear_rollback(
        self, request: admin_pb.ClearRollbackRequest, ctx: RequestContext[Any, Any], /
    ) -> admin_pb.ClearRollbackResponse:
        operator = _operator()
        record = self._runtime.rollouts.clear(_extension_key(request.extension_id, request.owner))
        _log.warning(
            "admin.rollback_cleared",
            extension=request.extension_id,
            owner=request.owner or "_platform",
            cleared=record is not None,
            operator=operator,
        )
        return admin_pb.ClearRollbackResponse(cleared=record is not None)

    async def refresh_catalog(
        self, request: admin_pb.RefreshCatalogRequest, ctx: RequestContext[Any, Any], /
    ) -> admin_pb.RefreshCatalogResponse:
        if request.extension_id:
            if not fullmatch(ID_PATTERN, request.extension_id):
                raise InvalidRequest("extension_id is not an extension id")
            if request.owner and not fullmatch(TENANT_PATTERN, request.owner):
                raise InvalidRequest("owner is not a tenant id")
            await self._runtime.refresh_extension(request.extension_id, request.owner)
        else:
            await self._runtime.refresh_all()
        count = sum(len(v) for _, v in self._runtime.catalog.extensions().values())
        return admin_pb.RefreshCatalogResponse(definitions=count)
