"""Module storage: the layout, object sources (local directory, S3), compiled-module caches."""

from app.settings import Settings
from app.storage._disk_cache import DiskCache
from app.storage._layout import (
    CONTROL_DIR,
    PLATFORM,
    control_key,
    definition_key,
    in_owners_tree,
    module_key,
    owner_prefix,
    promoted_key,
    version_prefix,
)
from app.storage._local import LocalDirectorySource
from app.storage._module_store import Compiler, ModuleStore, StoreStats
from app.storage._s3 import S3Source
from app.storage._seed import seed_directory
from app.storage._shared import MemoryStore, SharedStore, StoredObject
from app.storage._source import MAX_DEFINITION_BYTES, ObjectSource


def source_from_settings(settings: Settings) -> ObjectSource:
    """S3 when an endpoint is configured, the local directory otherwise."""
    if settings.s3_endpoint_url:
        return S3Source(settings)
    if settings.extensions_dir is None:
        raise ValueError(
            "set EXTENSIONS_RUNTIME_S3_ENDPOINT_URL or EXTENSIONS_RUNTIME_EXTENSIONS_DIR"
        )
    return LocalDirectorySource(settings.extensions_dir)


def shared_store(source: ObjectSource) -> SharedStore | None:
    """The store the fleet shares control state in: the S3 source itself, when it is one."""
    return source if isinstance(source, S3Source) else None


__all__ = [
    "CONTROL_DIR",
    "MAX_DEFINITION_BYTES",
    "PLATFORM",
    "Compiler",
    "DiskCache",
    "LocalDirectorySource",
    "MemoryStore",
    "ModuleStore",
    "ObjectSource",
    "S3Source",
    "SharedStore",
    "StoreStats",
    "StoredObject",
    "control_key",
    "definition_key",
    "in_owners_tree",
    "module_key",
    "owner_prefix",
    "promoted_key",
    "seed_directory",
    "shared_store",
    "source_from_settings",
    "version_prefix",
]
