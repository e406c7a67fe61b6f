"""extensions-runtime: runs tenant-authored WebAssembly extensions for Ameide."""

__version__ = "0.1.0"
