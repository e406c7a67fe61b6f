"""The GitHub workflow: valid against the workflow schema, and running what .ci/run runs."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests._servers import BIN, ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yaml"


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    # The schema is vendored in check-jsonschema (PyPI): no network needed.
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def test_the_workflow_validates_against_the_github_schema(tmp_path: Path) -> None:
    result = _check(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yaml"  # the check can fail: a job with no runner
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "run-on:"))
    assert _check(broken).returncode != 0


def _commands(text: str) -> list[str]:
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith(("#", "set ", "cd "))
    ]


def test_pull_requests_run_the_same_command_as_ci() -> None:
    ci = _commands((ROOT / ".ci" / "run").read_text())
    assert ci[-1] == "make test", ci
    steps = _workflow()["jobs"]["test"]["steps"]
    runs = [command for step in steps if "run" in step for command in _commands(step["run"])]
    assert runs == [ci[-1]]


def test_both_images_are_built_on_pull_requests_and_never_pushed() -> None:
    images = _workflow()["jobs"]["images"]
    dockerfiles = images["strategy"]["matrix"]["dockerfile"]
    assert sorted(dockerfiles) == ["Dockerfile.dev", "Dockerfile.release"]
    assert all((ROOT / name).is_file() for name in dockerfiles)
    runs = [step.get("run") for step in images["steps"] if "run" in step]
    assert runs == ["make wheelhouse"]  # the builds fetch nothing themselves (Ring 2)
    (build,) = [s for s in images["steps"] if s.get("uses", "").startswith("docker/build-push")]
    assert build["with"]["push"] is False
    assert "type=gha" in build["with"]["cache-from"]


def test_main_pushes_the_release_image_with_promotable_tags() -> None:
    workflow = _workflow()
    release = workflow["jobs"]["release"]
    assert release["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert set(release["needs"]) == {"test", "images"}
    meta = next(s for s in release["steps"] if s.get("id") == "meta")
    assert "type=sha,format=long" in meta["with"]["tags"]
    assert "steps.version.outputs.version" in meta["with"]["tags"]
    push = release["steps"][-1]
    assert push["with"]["file"] == "Dockerfile.release" and push["with"]["push"] is True
    assert push["with"]["sbom"] is True and push["with"]["provenance"] == "mode=max"
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers["push"]["branches"] == ["main"] and "pull_request" in triggers
