"""An extension directory as ``invoke`` and ``publish`` read it.

``extensions-runtime new`` writes ``extension.json`` (the definition without
its storage fields), ``input.json`` (a sample input) and, after ``build``,
``module.wasm``. Passing the directory instead of a module lets ``invoke`` run
the component with the limits and config it will be published with, which is
how it runs in the service.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Project"]


@dataclass(frozen=True)
class Project:
    directory: Path
    definition: dict[str, Any] = field(default_factory=dict)
    """``extension.json``: id, version, abi, risk_tier, limits, host_calls, config."""

    @classmethod
    def load(cls, directory: Path) -> Project:
        """Read ``directory/extension.json`` (optional); ``ValueError`` if it is not an object."""
        path = directory / "extension.json"
        definition: Any = {}
        if path.is_file():
            try:
                definition = json.loads(path.read_text())
            except ValueError as exc:
                raise ValueError(f"{path}: not JSON ({exc})") from None
            if not isinstance(definition, dict):
                raise ValueError(f"{path}: must be a JSON object")
        return cls(directory, definition)

    @property
    def module(self) -> Path:
        return self.directory / "module.wasm"

    @property
    def sample_input(self) -> bytes | None:
        path = self.directory / "input.json"
        return path.read_bytes() if path.is_file() else None

    def get(self, key: str, default: Any) -> Any:
        value = self.definition.get(key, default)
        expected = type(default)
        if default is not None and not isinstance(value, expected):
            raise ValueError(
                f"{self.directory / 'extension.json'}: {key!r} must be a {expected.__name__}"
            )
        return value
