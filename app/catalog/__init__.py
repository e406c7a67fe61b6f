"""Extension definitions, promoted versions, publishing them and the events that promote them."""

from app.catalog._catalog import Catalog
from app.catalog._definition import BlobRef, ExtensionDefinition, PromotedPointer
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
from app.catalog._publish import (
    Candidate,
    PublishConflict,
    build_definition,
    next_pointer,
    publish,
    set_candidate,
)
from app.catalog._webhook import promotion_route
from app.limits import DeclaredLimits

__all__ = [
    "EVENT_TYPE",
    "MAX_EVENT_BYTES",
    "SIGNATURE_HEADER",
    "BlobRef",
    "Candidate",
    "Catalog",
    "CatalogFollower",
    "DeclaredLimits",
    "EventMemory",
    "EventRejected",
    "ExtensionDefinition",
    "PromotedPointer",
    "PromotionGate",
    "PublishConflict",
    "build_definition",
    "next_pointer",
    "promotion_route",
    "publish",
    "set_candidate",
    "sign",
]
