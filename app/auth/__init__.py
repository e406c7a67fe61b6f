"""Caller token verification and ExecutionContext binding."""

from app.auth.verifier import Authenticator, AuthError, Principal, bind, check_settings

__all__ = ["AuthError", "Authenticator", "Principal", "bind", "check_settings"]
