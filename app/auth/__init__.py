"""Caller token verification and ExecutionContext binding."""

from app.auth._verifier import (
    Authenticator,
    AuthError,
    PermissionDenied,
    Principal,
    Unauthenticated,
    bind,
    check_settings,
)

__all__ = [
    "AuthError",
    "Authenticator",
    "PermissionDenied",
    "Principal",
    "Unauthenticated",
    "bind",
    "check_settings",
]
