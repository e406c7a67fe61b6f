"""The runtime: the parts of the service wired together, and what it serves.

:class:`Runtime` builds every long-lived part once and owns its lifecycle; the
work of a call happens in ``app/pipeline/``. :class:`ExtensionView` is the one
read model of the extension listing, for the admin RPC and the console.
"""

from app.runtime._listing import ExtensionView, Listing, VersionView
from app.runtime._runtime import Runtime

__all__ = ["ExtensionView", "Listing", "Runtime", "VersionView"]
