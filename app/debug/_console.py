"""``GET /debug`` (the page), ``/debug/static/*`` (its bundle) and ``/debug/extensions``.

Only mounted when ``debug_console`` is on (``serve --dev`` turns it on). The
listing is the one thing the page needs beyond the public RPC; it names
extensions and versions, never bytes, limits or config. With caller auth on it
needs the same bearer token as the RPC: the catalog is not public.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.auth import Authenticator, AuthError

if TYPE_CHECKING:
    from app.runtime import Runtime

STATIC_DIR = Path(__file__).resolve().parent / "static"

# The page loads only its own script and style; it may call any origin the
# person types (CORS on that server decides), and nothing may frame it.
_PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' http: https:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


def extension_listing(runtime: Runtime | None, tenant: str | None = None) -> list[dict[str, Any]]:
    """``[{id, owner, promoted, rollout, versions: [{version, abi, risk_tier, description,
    disabled}]}]``.

    ``tenant``: only what that caller may invoke; ``None`` lists everything.
    """
    if runtime is None:
        return []
    return [
        {
            "id": view.extension_id,
            "owner": view.owner,
            "promoted": view.promoted,
            "rollout": _rollout(runtime, (view.owner_key, view.extension_id)),
            "versions": [
                {
                    "version": v.definition.version,
                    "abi": v.definition.abi,
                    "risk_tier": v.definition.risk_tier,
                    "description": v.definition.description,
                    "disabled": v.disabled_reason,
                }
                for v in view.versions
            ],
        }
        for view in runtime.describe(tenant)
    ]


def _rollout(runtime: Runtime, key: tuple[str, str]) -> dict[str, Any] | None:
    """Version names and shares only: what the page shows and the admin RPC sets."""
    pointer = runtime.catalog.pointers().get(key)
    if pointer is None:
        return None
    rollback = runtime.rollouts.rolled_back(key)
    return {
        "previous": pointer.previous,
        "candidate": pointer.candidate,
        "shadow_per_mille": pointer.shadow_per_mille,
        "canary_percent": pointer.canary_percent,
        "rolled_back_to": rollback.to_version if rollback is not None else None,
    }


def console_routes(runtime: Runtime | None, authenticator: Authenticator) -> list[BaseRoute]:
    """The console's routes, to place before any catch-all route."""

    async def page(_: Request) -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)

    async def extensions(request: Request) -> JSONResponse:
        tenant: str | None = None  # auth off (local work): everything
        if authenticator.enabled:
            try:
                principal = authenticator.authenticate(request.headers.get("authorization"))
            except AuthError as refused:
                return JSONResponse(
                    {"error": refused.message},
                    status_code=401,
                    headers={"www-authenticate": "Bearer", "cache-control": "no-store"},
                )
            # What this caller may invoke, as the RPC would resolve it.
            tenant = principal.tenant_id if principal is not None else ""
        return JSONResponse(
            {"extensions": extension_listing(runtime, tenant)},
            headers={"cache-control": "no-store"},
        )

    return [
        Route("/debug", page, methods=["GET"]),
        Route("/debug/", page, methods=["GET"]),
        Route("/debug/extensions", extensions, methods=["GET"]),
        Mount("/debug/static", StaticFiles(directory=STATIC_DIR), name="debug-static"),
    ]
