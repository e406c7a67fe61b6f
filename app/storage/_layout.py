"""Where definitions, promotion pointers and module bytes live: the one description.

The layout is identical in a local directory and under the bucket's prefix:
``{id}/promoted.json`` names the promoted version, ``{id}/{version}/extension.json``
is the definition, and the module bytes live at the definition's
``wasm_blob_ref.key`` (by convention ``{id}/{version}/module.wasm``).

Those are **platform** extensions, which every tenant may call. A tenant's own
extensions live the same way under ``_tenants/{tenant}/``, so ids repeat
across tenants without colliding, and a listing of one tenant's folder never
sees another's. ``_tenants`` cannot be an extension id (ids start with a
letter or digit), so the two trees never overlap.

Readers (both sources, the catalog's placement check), writers (``publish``,
the dev seed) and the tests all build keys here, so the layout changes in one
place or not at all.
"""

from __future__ import annotations

__all__ = [
    "CONTROL_DIR",
    "DEFINITION_FILE",
    "MODULE_FILE",
    "PLATFORM",
    "PROMOTED_FILE",
    "TENANTS_DIR",
    "control_key",
    "definition_key",
    "extension_prefix",
    "in_owners_tree",
    "module_key",
    "owner_prefix",
    "promoted_key",
    "version_prefix",
]

TENANTS_DIR = "_tenants"
PLATFORM = ""
"""The owner of platform extensions (no tenant)."""
DEFINITION_FILE = "extension.json"
PROMOTED_FILE = "promoted.json"
MODULE_FILE = "module.wasm"


def owner_prefix(owner: str) -> str:
    """Where ``owner``'s extensions live, relative to the store's root or prefix."""
    return f"{TENANTS_DIR}/{owner}/" if owner else ""


def extension_prefix(owner: str, extension_id: str) -> str:
    """The folder of one extension: its versions and its promotion pointer."""
    return f"{owner_prefix(owner)}{extension_id}/"


def version_prefix(owner: str, extension_id: str, version: str) -> str:
    """The folder of one version: its definition and, by convention, its module."""
    return f"{extension_prefix(owner, extension_id)}{version}/"


def definition_key(owner: str, extension_id: str, version: str) -> str:
    return version_prefix(owner, extension_id, version) + DEFINITION_FILE


def promoted_key(owner: str, extension_id: str) -> str:
    return extension_prefix(owner, extension_id) + PROMOTED_FILE


def module_key(owner: str, extension_id: str, version: str) -> str:
    """Where ``publish`` puts a version's bytes (a definition may name another key)."""
    return version_prefix(owner, extension_id, version) + MODULE_FILE


def in_owners_tree(key: str, owner: str) -> bool:
    """Whether ``key`` lies in ``owner``'s tree: its own folder for a tenant, and
    outside every tenant's folder for the platform."""
    if owner:
        return key.startswith(owner_prefix(owner))
    return not key.startswith(f"{TENANTS_DIR}/")


CONTROL_DIR = "_control/"
"""Fleet-wide control state (``app/fleet``): switches, promotion events, members.

Like ``_tenants`` it cannot be an extension id, so no listing of extensions
ever sees it.
"""


def control_key(kind: str, name: str) -> str:
    """One control object: ``kind`` is ``switches``, ``events`` or ``members``."""
    return f"{CONTROL_DIR}{kind}/{name}.json"
