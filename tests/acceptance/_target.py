"""Where the acceptance suite runs, from the environment: ``local`` or ``cluster``.

``local`` (the default) starts the service, its S3 and tokens on loopback.
``cluster`` runs against a deployed service named only by these variables,
validated all at once so a misconfigured run fails in one line, before any
test runs:

====================================  ==============================================
``INTEGRATION_MODE``                  ``local`` (default) or ``cluster``
``INTEGRATION_RUNTIME_URL``           the runtime's base URL, ``http(s)://host[:port]``
``INTEGRATION_TOKEN``                 a caller token of the tenant below, or
``INTEGRATION_TOKEN_COMMAND``         a shell command printing one (exactly one of the two)
``INTEGRATION_TENANT``                the tenant the token belongs to
``INTEGRATION_ADMIN``                 ``true`` to run the kill-switch round trip (default ``false``)
``INTEGRATION_ADMIN_TOKEN`` or        a token with the admin scope, when ``INTEGRATION_ADMIN``
``INTEGRATION_ADMIN_TOKEN_COMMAND``   is ``true`` (exactly one of the two)
``INTEGRATION_EXTENSION``             an extension that echoes its input (default ``echo``)
``INTEGRATION_LIMIT_EXTENSION``       one that loops on ``{"iterations": N}`` (default ``spin``)
====================================  ==============================================
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from app._ids import ID_PATTERN, TENANT_PATTERN

__all__ = ["MODES", "Target", "TargetProblem", "cluster_target", "mode"]

MODES = ("local", "cluster")
_PREFIX = "INTEGRATION_"


class TargetProblem(Exception):
    """The environment does not describe a usable target; the message is one line."""


@dataclass(frozen=True)
class Target:
    """A running service and what the suite may do with it."""

    mode: str
    url: str
    token: str
    tenant: str
    admin_token: str | None
    extension: str = "echo"
    limit_extension: str = "spin"

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


def mode(env: Mapping[str, str]) -> str:
    chosen = env.get(f"{_PREFIX}MODE", "local")
    if chosen not in MODES:
        raise TargetProblem(f"INTEGRATION_MODE must be local or cluster, not {chosen!r}")
    return chosen


def cluster_target(env: Mapping[str, str]) -> Target:
    """The deployed target; raises :class:`TargetProblem` naming every bad variable."""
    missing: list[str] = []
    malformed: list[str] = []

    def get(name: str) -> str:
        return env.get(_PREFIX + name, "").strip()

    url = get("RUNTIME_URL")
    if not url:
        missing.append("INTEGRATION_RUNTIME_URL")
    elif not _is_base_url(url):
        malformed.append("INTEGRATION_RUNTIME_URL (expected http(s)://host[:port])")
    tenant = get("TENANT")
    if not tenant:
        missing.append("INTEGRATION_TENANT")
    elif not re.fullmatch(TENANT_PATTERN, tenant):
        malformed.append("INTEGRATION_TENANT (not a tenant id)")
    admin = get("ADMIN").lower() or "false"
    if admin not in ("true", "false"):
        malformed.append("INTEGRATION_ADMIN (expected true or false)")
    for name in ("EXTENSION", "LIMIT_EXTENSION"):
        if get(name) and not re.fullmatch(ID_PATTERN, get(name)):
            malformed.append(f"INTEGRATION_{name} (not an extension id)")
    token_source = _one_of(get, "TOKEN", missing, malformed)
    admin_source = _one_of(get, "ADMIN_TOKEN", missing, malformed) if admin == "true" else None
    if missing or malformed:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if malformed:
            parts.append("malformed " + ", ".join(malformed))
        raise TargetProblem("cluster mode: " + "; ".join(parts))
    assert token_source is not None
    return Target(
        mode="cluster",
        url=url.rstrip("/"),
        token=_obtain(token_source, "INTEGRATION_TOKEN"),
        tenant=tenant,
        admin_token=_obtain(admin_source, "INTEGRATION_ADMIN_TOKEN") if admin_source else None,
        extension=get("EXTENSION") or "echo",
        limit_extension=get("LIMIT_EXTENSION") or "spin",
    )


def _is_base_url(url: str) -> bool:
    parts = urlsplit(url)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and parts.path in ("", "/")
        and not parts.query
    )


def _one_of(
    get: Callable[[str], str], name: str, missing: list[str], malformed: list[str]
) -> tuple[str, str] | None:
    """``("token", value)`` or ``("command", value)`` from NAME / NAME_COMMAND."""
    value, command = get(name), get(f"{name}_COMMAND")
    if value and command:
        malformed.append(f"INTEGRATION_{name} and INTEGRATION_{name}_COMMAND (set only one)")
        return None
    if not value and not command:
        missing.append(f"INTEGRATION_{name} or INTEGRATION_{name}_COMMAND")
        return None
    return ("token", value) if value else ("command", command)


def _obtain(source: tuple[str, str], name: str) -> str:
    kind, value = source
    if kind == "token":
        return value
    done = subprocess.run(
        value, shell=True, capture_output=True, text=True, timeout=60, check=False
    )
    token = done.stdout.strip()
    if done.returncode != 0 or not token:
        raise TargetProblem(
            f"cluster mode: {name}_COMMAND failed (exit {done.returncode}) or printed nothing"
        )
    return token
