"""The fleet: processes sharing one storage apply the same switches, promotions and limits."""

from app.fleet._fleet import Fleet, TooManySwitches
from app.fleet._objects import promotion_notice

__all__ = ["Fleet", "TooManySwitches", "promotion_notice"]
