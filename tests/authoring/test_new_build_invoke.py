"""Nothing to a running extension in three commands, per language: ``new``, ``build``,
``invoke`` (the console script, as an author runs it), then ``publish`` of the same
directory into an extensions directory the service could serve.

Each build uses the real toolchain from the project's lock files (componentize-py,
componentize-js, clang + wasm-tools); a missing one fails, it never skips.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).parent / "extensions-runtime")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("python", {"message": "Hello, Ada!"}),
        ("js", {"message": "Hello, Ada!"}),
        ("c", {"received_bytes": 16}),
    ],
)
def test_three_commands_from_nothing_to_an_answer(
    tmp_path: Path, lang: str, expected: dict[str, object]
) -> None:
    name = f"greet-{lang}"
    created = _cli("new", name, "--lang", lang, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    built = _cli("build", name, cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert built.stdout.startswith(f"built {tmp_path / name / 'module.wasm'}")
    ran = _cli("invoke", name, "--json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["error"] is None
    assert report["output"] == expected
    assert [line["level"] for line in report["logs"]] == ["INFO"]
    # The extension.json's limits, not the defaults, are what ran.
    definition = json.loads((tmp_path / name / "extension.json").read_text())
    assert report["limits"]["fuel"] == definition["limits"]["fuel"]
    if lang != "c":  # the config object reaches the guest through host.config()
        definition["config"] = {"greeting": "Howdy"}
        (tmp_path / name / "extension.json").write_text(json.dumps(definition))
        ran = _cli("invoke", name, "--json", "--input", '{"name": "Grace"}', cwd=tmp_path)
        assert json.loads(ran.stdout)["output"] == {"message": "Howdy, Grace!"}
    bad = "" if lang == "c" else "[1]"  # what each template refuses
    refused = _cli("invoke", name, "--json", "--input", bad, cwd=tmp_path)
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"]["kind"] == "GUEST_ERROR"

    published = _cli("publish", name, "--dir", str(tmp_path / "bucket"), "--promote", cwd=tmp_path)
    assert published.returncode == 0, published.stderr
    stored = json.loads((tmp_path / "bucket" / name / "0.1.0" / "extension.json").read_text())
    limits = {key: value for key, value in stored["limits"].items() if value is not None}
    assert (stored["abi"], limits) == ("component", definition["limits"])
    assert stored["config"] == definition["config"]
    pointer = json.loads((tmp_path / "bucket" / name / "promoted.json").read_text())
    assert (pointer["version"], sorted(pointer)) == ("0.1.0", ["promoted_at", "version"])
