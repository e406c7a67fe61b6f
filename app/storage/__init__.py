"""Module storage: compiled modules by digest, caches and singleflight."""

from app.storage.module_store import Compiler, ModuleStore, StoreStats

__all__ = ["Compiler", "ModuleStore", "StoreStats"]
