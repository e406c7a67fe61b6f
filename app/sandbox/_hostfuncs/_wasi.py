"""WASI preview1 numbers the replacements answer with (``wasi_snapshot_preview1.witx``)."""

from __future__ import annotations

__all__ = [
    "ABSTIME",
    "CLOCK_CPUTIME",
    "CLOCK_MONOTONIC",
    "CLOCK_REALTIME",
    "EBADF",
    "EFAULT",
    "EINVAL",
    "ENOTSUP",
    "ESUCCESS",
    "MODULE",
]

MODULE = "wasi_snapshot_preview1"

ESUCCESS = 0
EBADF = 8
EFAULT = 21
EINVAL = 28
ENOTSUP = 58

CLOCK_REALTIME = 0
CLOCK_MONOTONIC = 1
CLOCK_CPUTIME = (2, 3)
"""Process and thread CPU time: wasmtime answers EBADF, and so do we."""
ABSTIME = 1
"""``subclockflags.subscription_clock_abstime``: the timeout is a point in time."""
