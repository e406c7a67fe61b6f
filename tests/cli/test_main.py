"""The command line's own surface: the version it reports and its two entry points."""

from __future__ import annotations

import importlib.metadata
import subprocess

import pytest

from app.cli import main
from tests._servers import BIN


def test_version_comes_from_the_installed_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    expected = importlib.metadata.version("extensions-runtime")
    assert capsys.readouterr().out.strip() == f"extensions-runtime {expected}"


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2
    assert "serve" in capsys.readouterr().err


@pytest.mark.integration  # subprocesses
@pytest.mark.parametrize(
    "command",
    [[str(BIN / "extensions-runtime")], [str(BIN / "python"), "-m", "app"]],
    ids=["console-script", "python-m-app"],
)
def test_the_console_script_and_python_m_app_are_the_same_cli(command: list[str]) -> None:
    result = subprocess.run(
        [*command, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    version = importlib.metadata.version("extensions-runtime")
    assert result.stdout.split() == ["extensions-runtime", version]
