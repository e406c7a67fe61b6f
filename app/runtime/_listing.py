"""The one read model of what this process serves, for operators and the console.

The admin RPC (``ListExtensions``) and the debug console list the same
extensions, so they read the same model: every loaded version with whether
its module is cached, whether a switch disables it, and its breakers. A
tenant's view is what the RPC would resolve for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.catalog import Catalog, ExtensionDefinition
from app.controls import PLATFORM_OWNER, Breakers, BreakerState, Controls
from app.storage import PLATFORM, ModuleStore

__all__ = ["ExtensionView", "Listing", "VersionView"]


@dataclass(frozen=True, slots=True)
class VersionView:
    """One loaded version and what the runtime knows about it."""

    definition: ExtensionDefinition
    cached: bool
    disabled_reason: str | None
    breaker: BreakerState | None
    open_tenant_breakers: int


@dataclass(frozen=True, slots=True)
class ExtensionView:
    """One extension of one owner (``_platform`` or a tenant) with its versions."""

    owner: str
    extension_id: str
    promoted: str | None
    versions: list[VersionView]

    @property
    def owner_key(self) -> str:
        """The owner as the catalog keys it (empty for a platform extension)."""
        return "" if self.owner == PLATFORM_OWNER else self.owner


class Listing:
    """Reads the catalog, the module cache, the switches and the breakers into views."""

    def __init__(
        self, catalog: Catalog, modules: ModuleStore, controls: Controls, breakers: Breakers
    ) -> None:
        self._catalog = catalog
        self._modules = modules
        self._controls = controls
        self._breakers = breakers

    def __call__(self, visible_to: str | None = None) -> list[ExtensionView]:
        """Every loaded extension with its state.

        ``visible_to``: only what that tenant may call (its own extensions,
        then platform ones it does not shadow), as the RPC would resolve them.
        ``None``: everything, for operators.
        """
        cached = set(self._modules.cached())
        breakers = self._breakers.states()
        listing = self._catalog.extensions()
        if visible_to is not None:
            own = {i for (o, i) in listing if o == visible_to}
            listing = {
                (o, i): v
                for (o, i), v in listing.items()
                if o == visible_to or (o == PLATFORM and i not in own)
            }
        views: list[ExtensionView] = []
        for (owner, extension_id), (promoted, versions) in sorted(listing.items()):
            described: list[VersionView] = []
            for version in versions:
                definition = self._catalog.lookup(owner, extension_id, version)
                if definition is None:  # removed between the two reads
                    continue
                state, open_tenants = breakers.get((owner, extension_id, version), (None, 0))
                described.append(
                    VersionView(
                        definition=definition,
                        cached=definition.sha256 in cached,
                        disabled_reason=self._controls.decide(
                            extension_id, version, definition.risk_tier, "", owner
                        ).disabled_reason,
                        breaker=state,
                        open_tenant_breakers=open_tenants,
                    )
                )
            views.append(
                ExtensionView(
                    owner=owner or PLATFORM_OWNER,
                    extension_id=extension_id,
                    promoted=promoted,
                    versions=described,
                )
            )
        return views
