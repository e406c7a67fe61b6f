"""Extension definitions, promoted versions and where they are read from."""

from app.catalog.catalog import Catalog
from app.catalog.definition import BlobRef, DeclaredLimits, ExtensionDefinition

__all__ = [
    "BlobRef",
    "Catalog",
    "DeclaredLimits",
    "ExtensionDefinition",
]
