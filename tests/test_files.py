"""Whole-or-nothing writes: no temp file left behind, the mode asked for, links replaced."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app._files import UnsafePath, read_beneath, write_atomically, write_beneath


def test_a_write_leaves_only_the_file_with_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "artifact.cwasm"
    write_atomically(target, b"first", mode=0o600)
    write_atomically(target, b"second", mode=0o600)
    assert target.read_bytes() == b"second"
    assert target.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["artifact.cwasm"]


def test_a_link_at_the_final_name_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    (tmp_path / "pointer.json").symlink_to(victim)
    write_atomically(tmp_path / "pointer.json", b"{}")
    assert victim.read_bytes() == b"untouched"
    assert not (tmp_path / "pointer.json").is_symlink()


def test_beneath_a_root_no_link_is_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    write_beneath(root, "a/1/module.wasm", b"wasm")
    assert read_beneath(root, "a/1/module.wasm", 100) == b"wasm"
    assert read_beneath(root, "b/1/module.wasm", 100) is None
    (root / "evil").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePath):
        write_beneath(root, "evil/1/module.wasm", b"wasm")
    with pytest.raises(UnsafePath):
        read_beneath(root, "evil/1/module.wasm", 100)
    with pytest.raises(UnsafePath):
        write_beneath(root, "../outside/x", b"wasm")
    assert list(outside.iterdir()) == []
