"""Extension definitions, promoted versions, publishing them and the events that promote them."""

from app.catalog._catalog import Catalog
from app.catalog._definition import BlobRef, ExtensionDefinition
from app.catalog._events import (
    EVENT_TYPE,
    MAX_EVENT_BYTES,
    SIGNATURE_HEADER,
    EventMemory,
    EventRejected,
    PromotionGate,
    sign,
)
from app.catalog._follower import CatalogFollower
from app.catalog._publish import PublishConflict, build_definition, publish
from app.limits import DeclaredLimits

__all__ = [
    "EVENT_TYPE",
    "MAX_EVENT_BYTES",
    "SIGNATURE_HEADER",
    "BlobRef",
    "Catalog",
    "CatalogFollower",
    "DeclaredLimits",
    "EventMemory",
    "EventRejected",
    "ExtensionDefinition",
    "PromotionGate",
    "PublishConflict",
    "build_definition",
    "publish",
    "sign",
]
