"""The fleet: processes sharing one storage apply the same switches, promotions and limits."""

from app.fleet._fleet import Fleet, TooManySwitches
from app.fleet._objects import promotion_notice
from app.fleet._rollbacks import SharedRollback

__all__ = ["Fleet", "SharedRollback", "TooManySwitches", "promotion_notice"]
