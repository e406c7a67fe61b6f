"""The RPC surface: the ``WasmExtensionRuntime`` and admin handlers, the layers
around them (sanitize, authenticate, admission, admin scope) and wire errors."""

from app.rpc._admin import AdminService
from app.rpc._codec import codecs
from app.rpc._errors import InvalidRequest, code_for, to_connect_error
from app.rpc._layers import admin_app, admin_layers, runtime_app, runtime_layers
from app.rpc._receive import AfterBodyWaits
from app.rpc._service import RuntimeService
from app.rpc._unknown import unknown_method

__all__ = [
    "AdminService",
    "AfterBodyWaits",
    "InvalidRequest",
    "RuntimeService",
    "admin_app",
    "admin_layers",
    "code_for",
    "codecs",
    "runtime_app",
    "runtime_layers",
    "to_connect_error",
    "unknown_method",
]
