"""Caller token verification and ExecutionContext binding."""

from app.auth.verifier import Authenticator, AuthError, Principal, bind

__all__ = ["AuthError", "Authenticator", "Principal", "bind"]
