"""extensions-runtime: runs tenant-authored WebAssembly extensions for Ameide."""

from importlib.metadata import version

__version__ = version("extensions-runtime")
"""The installed distribution's version: ``pyproject.toml`` is the one place it is written."""
