"""Extension definitions, promoted versions and the promotion events that change them."""

from app.catalog._catalog import Catalog
from app.catalog._definition import BlobRef, DeclaredLimits, ExtensionDefinition
from app.catalog._events import (
    EVENT_TYPE,
    MAX_EVENT_BYTES,
    SIGNATURE_HEADER,
    EventMemory,
    EventRejected,
    PromotionGate,
    sign,
)

__all__ = [
    "EVENT_TYPE",
    "MAX_EVENT_BYTES",
    "SIGNATURE_HEADER",
    "BlobRef",
    "Catalog",
    "DeclaredLimits",
    "EventMemory",
    "EventRejected",
    "ExtensionDefinition",
    "PromotionGate",
    "sign",
]
