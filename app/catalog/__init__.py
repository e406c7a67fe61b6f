"""Extension definitions, promoted versions and where they are read from."""

from app.catalog._follower import CatalogFollower
from app.catalog.catalog import Catalog
from app.catalog.definition import BlobRef, ExtensionDefinition
from app.limits import DeclaredLimits

__all__ = [
    "BlobRef",
    "Catalog",
    "CatalogFollower",
    "DeclaredLimits",
    "ExtensionDefinition",
]
