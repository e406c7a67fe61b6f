"""A config file that is re-read when it changes, keeping the last good value.

Operators edit mounted ConfigMaps at 3 a.m.; a typo must not take the service
down or silently drop every rule. So a file that fails to parse is logged and
counted, and the previous value stays in force until a good one arrives.
A bad file is counted and logged once, not at every check while it stays
(`make reliability` saw one bad edit counted eight times in four seconds,
which makes the failure counter useless as "how many bad edits").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from app.telemetry import Family, get_logger

T = TypeVar("T")
_log = get_logger("app.hotfile")
_MISSING = (-1, -1, -1)


class HotFile(Generic[T]):
    """The parsed content of ``path``, re-checked at most every ``interval_s``."""

    def __init__(
        self,
        path: Path | None,
        parse: Callable[[str], T],
        default: T,
        *,
        name: str,
        interval_s: float = 1.0,
    ) -> None:
        self._path = path
        self._parse = parse
        self._value = default
        self._name = name
        self._interval = interval_s
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._failed: tuple[int, int, int] | None = None  # the bad file already counted
        self._next_check = 0.0
        self.reload_failures = 0
        self.last_error: str | None = None
        if path is not None:
            self._reload(force=True)

    @property
    def path(self) -> Path | None:
        return self._path

    def current(self) -> T:
        """The newest good value; costs one ``stat`` at most every interval."""
        if self._path is not None:
            now = time.monotonic()
            if now >= self._next_check:
                self._next_check = now + self._interval
                self._reload()
        return self._value

    def _reload(self, *, force: bool = False) -> None:
        assert self._path is not None
        with self._lock:
            try:
                stat = self._path.stat()
                signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            except OSError:
                signature = _MISSING
            if not force and signature in (self._signature, self._failed):
                return
            try:
                if signature == _MISSING:
                    raise FileNotFoundError(f"{self._path} is missing or unreadable")
                value = self._parse(self._path.read_text())
            except Exception as exc:  # noqa: BLE001 - any bad file keeps the last good value
                self._failed = signature
                self.reload_failures += 1
                self.last_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                _log.error(
                    f"{self._name}.reload_failed", path=str(self._path), error=self.last_error
                )
                return
            self._signature = signature
            self._failed = None
            self._value = value
            self.last_error = None
            _log.info(f"{self._name}.loaded", path=str(self._path))


class Reloading(Protocol):
    """Anything kept from a hot-reloaded file (a :class:`HotFile`, or a part built on one)."""

    @property
    def reload_failures(self) -> int: ...


class ReloadFailures:
    """One metric family for every operator file, each under its own ``file`` label."""

    def __init__(self, files: Mapping[str, Reloading]) -> None:
        self._files = dict(files)

    def metric_families(self) -> Iterable[Family]:
        yield Family(
            "counter",
            "config_reload_failures",
            "Operator files that failed to reload (the last good version stays in force).",
            [((name,), float(f.reload_failures)) for name, f in self._files.items()],
            ("file",),
        )
