"""The layers every RPC passes through, assembled here and nowhere else.

Read a list from the outside in; each layer wraps the ones after it::

    runtime RPC:  sanitize -> authenticate -> admission -> InvokeExtension
    admin RPC:    sanitize -> authenticate (required) -> admin scope -> handler

*sanitize* (``_sanitize``) opens the call's record and answers every failure
through the one mapper (``_errors``); *authenticate* (``_authenticate``)
verifies the token; *admission* (``_admission``) takes the tenant's rate limit
and a turn; *admin scope* (``_admin_scope``) lets only operators through.

connectrpc runs the leading *metadata* interceptors of the list before it
reads the body, so everything up to the handler costs no decoding, and a
refused call's body is never read. The one exception is admission with
caller auth off: the tenant is only known from the body, so that layer is a
message interceptor and runs once the body is decoded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectrpc.interceptor import Interceptor

from app.auth import Authenticator
from app.controls import RateLimiter, TenantGate
from app.gen.ameide.extensions.v1.admin_connect import ExtensionRuntimeAdminASGIApplication
from app.invocation import Invoker
from app.rpc._admin import AdminService
from app.rpc._admin_scope import AdminScopeInterceptor
from app.rpc._admission import AdmissionInterceptor, BodyAdmissionInterceptor
from app.rpc._authenticate import AuthenticationInterceptor
from app.rpc._codec import codecs
from app.rpc._offload import RuntimeASGIApplication
from app.rpc._sanitize import SanitizingInterceptor
from app.rpc._service import RuntimeService

if TYPE_CHECKING:
    from app.runtime import Runtime

__all__ = ["ADMIN_READ_MAX_BYTES", "admin_app", "admin_layers", "runtime_app", "runtime_layers"]

ADMIN_READ_MAX_BYTES = 64 * 1024
"""Largest admin request body: the admin messages are small."""


def runtime_layers(
    authenticator: Authenticator,
    rate_limits: RateLimiter | None = None,
    gate: TenantGate | None = None,
) -> list[Interceptor]:
    """sanitize -> authenticate -> admission, for ``WasmExtensionRuntime``."""
    admission: Interceptor = (
        AdmissionInterceptor(rate_limits, gate)
        if authenticator.enabled
        else BodyAdmissionInterceptor(rate_limits, gate)
    )
    return [SanitizingInterceptor(), AuthenticationInterceptor(authenticator), admission]


def admin_layers(authenticator: Authenticator, scope: str) -> list[Interceptor]:
    """sanitize -> authenticate (even with caller auth off) -> admin scope, for the admin RPC."""
    return [
        SanitizingInterceptor(),
        AuthenticationInterceptor(authenticator, required=True),
        AdminScopeInterceptor(scope),
    ]


def runtime_app(
    invoker: Invoker,
    authenticator: Authenticator,
    *,
    read_max_bytes: int,
    rate_limits: RateLimiter | None = None,
    gate: TenantGate | None = None,
) -> RuntimeASGIApplication:
    """The ``WasmExtensionRuntime`` application: its handler inside its layers."""
    return RuntimeASGIApplication(
        RuntimeService(invoker),
        interceptors=runtime_layers(authenticator, rate_limits, gate),
        read_max_bytes=read_max_bytes,
        codecs=codecs(),
    )


def admin_app(
    runtime: Runtime, authenticator: Authenticator, scope: str
) -> ExtensionRuntimeAdminASGIApplication:
    """The ``ExtensionRuntimeAdmin`` application: its handlers inside their layers."""
    return ExtensionRuntimeAdminASGIApplication(
        AdminService(runtime),
        interceptors=admin_layers(authenticator, scope),
        read_max_bytes=ADMIN_READ_MAX_BYTES,
        codecs=codecs(),
    )
