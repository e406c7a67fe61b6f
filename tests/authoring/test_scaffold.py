"""``new``'s directory, language detection, and a build that cannot run says why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.authoring import BuildError, Language, Project, Toolchain, build, detect, scaffold
from app.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("language", "source"),
    [(Language.PYTHON, "app.py"), (Language.JS, "handler.js"), (Language.C, "handler.c")],
)
def test_new_writes_a_directory_that_says_its_language(
    tmp_path: Path, language: Language, source: str
) -> None:
    directory = scaffold("greet", language, tmp_path)
    assert (directory / source).is_file()
    assert "{{name}}" not in (directory / source).read_text()
    assert (directory / "wit" / "extension.wit").read_text() == (
        ROOT / "wit" / "extension" / "extension.wit"
    ).read_text()
    assert (directory / "extension.h").is_file() == (language is Language.C)
    definition = json.loads((directory / "extension.json").read_text())
    assert (definition["id"], definition["abi"]) == ("greet", "component")
    assert json.loads((directory / "input.json").read_text()) == {"name": "Ada"}
    assert "extensions-runtime build greet" in (directory / "README.md").read_text()
    assert detect(directory) is language


@pytest.mark.parametrize("name", ["Greet", "1greet", "greet/../x", "", "g" * 64, "greet_1"])
def test_new_refuses_a_name_that_is_not_an_extension_id(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="extension id"):
        scaffold(name, Language.PYTHON, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_new_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "greet").mkdir()
    (tmp_path / "greet" / "app.py").write_text("mine")
    assert main(["new", "greet", "--lang", "python", "--parent", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "greet" / "app.py").read_text() == "mine"


def test_a_directory_with_two_languages_or_none_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot tell the language"):
        detect(tmp_path)
    (tmp_path / "app.py").write_text("")
    (tmp_path / "handler.c").write_text("")
    with pytest.raises(ValueError, match="python, c"):
        detect(tmp_path)


def test_a_missing_tool_names_the_make_target(tmp_path: Path) -> None:
    directory = scaffold("greet", Language.JS, tmp_path)
    with pytest.raises(BuildError, match=r"componentize-js is not installed: run `make guest-js`"):
        build(directory, toolchain=Toolchain(node=Path("/usr/bin/node")))
    directory = scaffold("greet-c", Language.C, tmp_path)
    with pytest.raises(BuildError, match=r"clang is not installed: run `make guest-toolchain`"):
        build(directory, toolchain=Toolchain())


def test_build_of_a_file_or_an_empty_directory_fails_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build", str(tmp_path)]) == 1
    assert "cannot tell the language" in capsys.readouterr().err
    (tmp_path / "x").write_text("")
    assert main(["build", str(tmp_path / "x")]) == 1
    assert "is not a directory" in capsys.readouterr().err


def test_a_project_definition_must_be_an_object(tmp_path: Path) -> None:
    (tmp_path / "extension.json").write_text("[1]")
    with pytest.raises(ValueError, match="must be a JSON object"):
        Project.load(tmp_path)
    (tmp_path / "extension.json").write_text('{"limits": 3}')
    with pytest.raises(ValueError, match="'limits' must be a dict"):
        Project.load(tmp_path).get("limits", {})
