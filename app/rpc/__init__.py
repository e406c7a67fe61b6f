"""The RPC surface: ``WasmExtensionRuntime`` handlers, interceptors and wire errors."""

from app.rpc._admin import AdminService
from app.rpc._admission import AdmissionInterceptor, KeyPrefetchInterceptor
from app.rpc._codec import codecs
from app.rpc._errors import code_for, to_connect_error
from app.rpc._interceptors import SanitizingInterceptor
from app.rpc._offload import RuntimeASGIApplication
from app.rpc._service import RuntimeService
from app.rpc._unknown import unknown_method

__all__ = [
    "AdminService",
    "AdmissionInterceptor",
    "KeyPrefetchInterceptor",
    "RuntimeASGIApplication",
    "RuntimeService",
    "SanitizingInterceptor",
    "code_for",
    "codecs",
    "to_connect_error",
    "unknown_method",
]
