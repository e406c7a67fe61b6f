"""Extension definitions, promoted versions, publishing them and the events that promote them."""

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
from app.catalog._publish import PublishConflict, build_definition, publish

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
    "PublishConflict",
    "build_definition",
    "publish",
    "sign",
]
