"""Address space for guest linear memories: reserved, committed, recycled.

A guest memory is a reservation mapped inaccessible up front (its capacity
plus the guard wasmtime's compiled code relies on) whose first bytes are made
read/write as the memory grows (``app.sandbox._ffi`` owns the memories).

Why recycle reservations rather than map and unmap one per call: on the VMs
this service runs on, ``munmap`` of touched pages (a TLB shootdown on every
CPU the process runs on, Envoy's threads included) and the page faults of a
fresh mapping cost more than a small guest's whole run; an echo call spent
~40 % of its in-process time there. A small memory's reservation is kept
instead: its committed bytes are zeroed with ``memset`` at once, so nothing of
the last guest survives and the next one faults nothing in, and whatever lies
beyond the next guest's initial size is made inaccessible again before it
runs, so an access past its memory still faults (a trap) exactly as on a
fresh mapping. Memories that committed more than ``KEEP_RESIDENT_BYTES`` are
unmapped as before: zeroing them would cost more than it saves, and they
would hold that much resident memory while idle.

The recycler is shared by every tenant: it holds only zeroed pages, so it can
carry nothing between tenants, and it is capped in count and resident bytes,
so at worst a call finds it empty and maps as it would without it.
"""

from __future__ import annotations

import ctypes
import mmap
import threading
from dataclasses import dataclass

__all__ = [
    "KEEP_RESIDENT_BYTES",
    "RECYCLER",
    "Recycler",
    "commit",
    "release",
    "reserve",
    "round_up",
]

_PAGE = mmap.PAGESIZE
_PROT_NONE = 0
_PROT_RW = mmap.PROT_READ | mmap.PROT_WRITE
_MAP_NORESERVE = 0x4000  # Linux; not in Python's mmap module
_MAP_FLAGS = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE
_MAP_FAILED = ctypes.c_void_p(-1).value

_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_mprotect = _libc.mprotect
_mprotect.restype = ctypes.c_int
_mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_munmap = _libc.munmap
_munmap.restype = ctypes.c_int
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]

KEEP_RESIDENT_BYTES = 1 << 20
"""A memory that committed more than this is unmapped, not recycled."""
_MAX_PER_SHAPE = 16
_MAX_RESIDENT_BYTES = 32 << 20


def round_up(size: int) -> int:
    """``size`` rounded up to whole host pages."""
    return -(-size // _PAGE) * _PAGE


def reserve(mapped: int) -> int | None:
    """A fresh inaccessible reservation of ``mapped`` bytes; its base, or ``None``."""
    base = _mmap(None, mapped, _PROT_NONE, _MAP_FLAGS, -1, 0)
    if not base or base == _MAP_FAILED:
        return None
    return int(base)


def commit(base: int, start: int, end: int) -> bool:
    """Make ``[start, end)`` of the reservation at ``base`` read/write."""
    return end <= start or _mprotect(base + start, end - start, _PROT_RW) == 0


def release(base: int, mapped: int) -> None:
    """Unmap a reservation for good."""
    _munmap(base, mapped)


@dataclass(slots=True)
class _Spare:
    base: int
    committed: int


class Recycler:
    """Zeroed reservations kept by shape (mapped and capacity bytes) for reuse."""

    def __init__(
        self,
        *,
        max_per_shape: int = _MAX_PER_SHAPE,
        max_resident_bytes: int = _MAX_RESIDENT_BYTES,
    ) -> None:
        self._max_per_shape = max_per_shape
        self._max_resident = max_resident_bytes
        self._spares: dict[tuple[int, int], list[_Spare]] = {}
        self._resident = 0
        self._lock = threading.Lock()
        self.reused = 0
        """Reservations handed out again (for tests and the benchmark)."""

    def keep(self, base: int, mapped: int, capacity: int, committed: int) -> bool:
        """Zero and keep a released memory; ``False`` if the caller must unmap it."""
        if committed > KEEP_RESIDENT_BYTES:
            return False
        with self._lock:
            spares = self._spares.setdefault((mapped, capacity), [])
            if (
                len(spares) >= self._max_per_shape
                or self._resident + committed > self._max_resident
            ):
                return False
            self._resident += committed
        ctypes.memset(base, 0, committed)  # before anyone can take it
        with self._lock:
            spares.append(_Spare(base, committed))
        return True

    def take(self, mapped: int, capacity: int, initial: int) -> tuple[int, int] | None:
        """A kept reservation of this shape as ``(base, committed)``, or ``None``.

        Committed bytes beyond ``initial`` are made inaccessible again first, so
        the next guest's memory ends where a fresh mapping's would.
        """
        with self._lock:
            spares = self._spares.get((mapped, capacity))
            if not spares:
                return None
            spare = spares.pop()
            self._resident -= spare.committed
        need = round_up(initial)
        committed = spare.committed
        if committed > need:
            if _mprotect(spare.base + need, committed - need, _PROT_NONE) != 0:
                release(spare.base, mapped)
                return None
            committed = need
        self.reused += 1
        return spare.base, committed

    def resident_bytes(self) -> int:
        """Bytes held by kept reservations (zeroed, committed)."""
        return self._resident


RECYCLER = Recycler()
"""The process's recycler (guest memories are made on any thread)."""
