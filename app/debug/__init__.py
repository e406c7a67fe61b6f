"""What browsers need: the ``/debug`` console and CORS for cross-origin callers.

The console is a static page (``static/``, built from ``clients/ts`` with
``make console`` and committed, so the service needs no node) that calls the
RPC over gRPC-web or Connect from the browser, exactly like any other caller.
"""

from app.debug._console import STATIC_DIR, console_routes
from app.debug._cors import CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, add_cors

__all__ = ["CORS_ALLOW_HEADERS", "CORS_EXPOSE_HEADERS", "STATIC_DIR", "add_cors", "console_routes"]
