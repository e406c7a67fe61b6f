"""``extensions-runtime publish`` into a local directory: no symlink is followed and
a published version is never silently replaced."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests._servers import BIN, ROOT

pytestmark = pytest.mark.integration  # the CLI in a subprocess

EXAMPLES = ROOT / "examples" / "extensions"
ECHO = EXAMPLES / "echo" / "1.0.0" / "module.wasm"
HELLO = EXAMPLES / "hello" / "1.0.0" / "module.wasm"
SECRET = b"outside the root: must never change\n"


def _publish(root: Path, module: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EXTENSIONS_RUNTIME_EXTENSIONS_DIR": str(root)}
    env.pop("EXTENSIONS_RUNTIME_S3_ENDPOINT_URL", None)
    args = [str(BIN / "extensions-runtime"), "publish", str(module), "--id", "greeter"]
    return subprocess.run(
        [*args, "--version", "1", "--abi", "raw", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _layout(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(SECRET)
    return root, outside


def test_publish_writes_a_version_and_promotes(tmp_path: Path) -> None:
    root, _ = _layout(tmp_path)
    done = _publish(root, ECHO, "--promote")
    assert done.returncode == 0, done.stderr
    version = root / "greeter" / "1"
    assert (version / "module.wasm").read_bytes() == ECHO.read_bytes()
    assert json.loads((version / "extension.json").read_text())["id"] == "greeter"
    pointer = json.loads((root / "greeter" / "promoted.json").read_text())
    assert pointer.pop("version") == "1" and "previous" not in pointer  # nothing to roll back to
    assert set(pointer) == {"promoted_at"}  # the rollback window starts here
    assert (version / "module.wasm").stat().st_mode & 0o777 == 0o644
    # Nothing is left behind: no temp files beside the published ones.
    assert sorted(p.name for p in version.iterdir()) == ["extension.json", "module.wasm"]


def test_a_link_at_the_old_fixed_temp_name_is_not_followed(tmp_path: Path) -> None:
    """The old code wrote through ``.module.wasm.tmp``: a link there overwrote its target."""
    root, outside = _layout(tmp_path)
    version = root / "greeter" / "1"
    version.mkdir(parents=True)
    (version / ".module.wasm.tmp").symlink_to(outside / "victim")
    (version / ".extension.json.tmp").symlink_to(outside / "victim")
    done = _publish(root, ECHO)
    assert done.returncode == 0, done.stderr
    assert (outside / "victim").read_bytes() == SECRET
    assert (version / ".module.wasm.tmp").is_symlink()  # untouched, never opened
    assert not (version / "module.wasm").is_symlink()
    assert (version / "module.wasm").read_bytes() == ECHO.read_bytes()


def test_a_link_at_module_wasm_is_refused(tmp_path: Path) -> None:
    root, outside = _layout(tmp_path)
    version = root / "greeter" / "1"
    version.mkdir(parents=True)
    (version / "module.wasm").symlink_to(outside / "victim")
    for force in ((), ("--force",)):
        done = _publish(root, ECHO, *force)
        assert done.returncode == 2, done.stdout
        assert "symlink" in done.stderr
        assert (outside / "victim").read_bytes() == SECRET
        assert (version / "module.wasm").is_symlink()  # not replaced by the module either
        assert not (version / "extension.json").exists()


def test_a_linked_version_or_extension_directory_is_refused(tmp_path: Path) -> None:
    root, outside = _layout(tmp_path)
    (root / "greeter").mkdir()
    (root / "greeter" / "1").symlink_to(outside, target_is_directory=True)
    done = _publish(root, ECHO, "--force")
    assert done.returncode == 2
    assert "symlink" in done.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]

    (root / "greeter" / "1").unlink()
    (root / "greeter").rmdir()
    (root / "greeter").symlink_to(outside, target_is_directory=True)
    done = _publish(root, ECHO, "--promote", "--force")
    assert done.returncode == 2
    assert "symlink" in done.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert (outside / "victim").read_bytes() == SECRET


def test_a_published_version_is_not_replaced_without_force(tmp_path: Path) -> None:
    root, _ = _layout(tmp_path)
    module = root / "greeter" / "1" / "module.wasm"
    assert _publish(root, ECHO).returncode == 0
    # The same bytes again: a retried publish succeeds and changes nothing.
    again = _publish(root, ECHO)
    assert again.returncode == 0, again.stderr
    assert module.read_bytes() == ECHO.read_bytes()

    refused = _publish(root, HELLO)
    assert refused.returncode == 2
    assert "greeter 1 is already published with different bytes" in refused.stderr
    assert "--force" in refused.stderr
    assert module.read_bytes() == ECHO.read_bytes()

    forced = _publish(root, HELLO, "--force")
    assert forced.returncode == 0, forced.stderr
    assert module.read_bytes() == HELLO.read_bytes()
    definition = json.loads((root / "greeter" / "1" / "extension.json").read_text())
    assert definition["sha256"] == hashlib.sha256(HELLO.read_bytes()).hexdigest()


def test_an_owned_version_is_written_as_safely(tmp_path: Path) -> None:
    root, outside = _layout(tmp_path)
    done = _publish(root, ECHO, "--tenant", "acme", "--promote")
    assert done.returncode == 0, done.stderr
    owned = root / "_tenants" / "acme" / "greeter"
    assert (owned / "1" / "module.wasm").read_bytes() == ECHO.read_bytes()
    assert (owned / "promoted.json").exists()

    (root / "_tenants" / "evil").symlink_to(outside, target_is_directory=True)
    done = _publish(root, ECHO, "--tenant", "evil", "--force")
    assert done.returncode == 2
    assert "symlink" in done.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]


def test_promote_keeps_a_rollback_target_and_candidate_sets_a_rollout(tmp_path: Path) -> None:
    root, _ = _layout(tmp_path)
    refused = _publish(root, ECHO, "--candidate")
    assert refused.returncode == 2 and "nothing is promoted yet" in refused.stderr
    assert _publish(root, ECHO, "--promote").returncode == 0
    assert (
        _publish(root, HELLO, "--version", "2", "--abi", "wasi-stdio", "--promote").returncode == 0
    )
    pointer = json.loads((root / "greeter" / "promoted.json").read_text())
    assert (pointer["version"], pointer["previous"]) == ("2", "1")
    done = _publish(
        root,
        ECHO,
        "--version",
        "3",
        "--candidate",
        "--shadow-per-mille",
        "100",
        "--canary-percent",
        "20",
    )
    assert done.returncode == 0, done.stderr
    pointer = json.loads((root / "greeter" / "promoted.json").read_text())
    assert {k: pointer[k] for k in ("version", "previous", "candidate")} == {
        "version": "2",
        "previous": "1",
        "candidate": "3",
    }
    assert (pointer["shadow_per_mille"], pointer["canary_percent"]) == (100, 20)
    alone = _publish(root, ECHO, "--version", "4", "--shadow-per-mille", "5")
    assert alone.returncode == 2 and "go with --candidate" in alone.stderr
    both = _publish(root, ECHO, "--version", "4", "--promote", "--candidate")
    assert both.returncode == 2 and "not allowed with" in both.stderr
