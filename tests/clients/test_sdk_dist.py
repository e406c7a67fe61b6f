"""The Python SDK is a distribution of its own: installed alone, it brings no server along.

A clean virtualenv (the interpreter the tests run on), ``pip install clients/python``
from the package index, and then, inside that venv: the SDK imports, calls the real
runtime (``serve --dev``) with the stubs it ships, and none of the service's
dependencies (wasmtime, pyvoy, aioboto3, ...) nor the service's ``app`` package can
be imported. It needs the package index; without it the test fails, it never skips.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests._servers import ROOT

pytestmark = pytest.mark.integration  # a venv, pip and a server

SDK = ROOT / "clients" / "python"
DISTRIBUTION = "ameide-extensions-client"
ALLOWED_REQUIREMENTS = {"connectrpc", "protobuf-py", "pyqwest"}
SERVER_ONLY_MODULES = ("wasmtime", "pyvoy", "aioboto3", "aiobotocore", "boto3", "starlette", "app")
SERVER_ONLY_DISTRIBUTIONS = {"wasmtime", "pyvoy", "aioboto3", "extensions-runtime"}

# Runs inside the clean venv: argv = [url, *modules that must not be importable].
PROBE = """
import importlib.metadata, importlib.util, json, re, sys

import ameide_extensions_client as sdk
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_connect, runtime_pb

url, *server_only = sys.argv[1:]
with sdk.ExtensionsClientSync(url, caller="sdk-dist-test") as client:
    result = client.invoke("hello", {"name": "Ada"}, context=runtime_pb.ExecutionContext())
requires = importlib.metadata.requires("ameide-extensions-client") or []
names = {re.split(r"[^A-Za-z0-9_.-]", r, maxsplit=1)[0].lower() for r in requires}
print(json.dumps({
    "sdk_file": sdk.__file__,
    "output": result.output,
    "importable": [name for name in server_only if importlib.util.find_spec(name) is not None],
    "loaded": [name for name in server_only if name in sys.modules],
    "requires": sorted(names),
    "client_class": runtime_connect.WasmExtensionRuntimeClientSync.__name__,
}))
"""


def _run(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    # Nothing of this checkout may leak into the venv through the environment.
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def sdk_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the SDK installed from ``clients/python`` (and nothing else)."""
    where = tmp_path_factory.mktemp("sdk-dist")
    venv = where / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], cwd=where, timeout=120)
    assert made.returncode == 0, f"python -m venv failed:\n{made.stdout}{made.stderr}"
    python = venv / "bin" / "python"
    installed = _run(
        [str(python), "-m", "pip", "install", "--no-input", "--quiet", str(SDK)],
        cwd=where,
        timeout=240,
    )
    assert installed.returncode == 0, (
        f"pip install {SDK} failed (it needs the package index):\n"
        f"{installed.stdout}{installed.stderr}"
    )
    return python


def test_installed_alone_it_has_no_server_dependencies(sdk_python: Path) -> None:
    venv = sdk_python.parent.parent
    listed = _run([str(sdk_python), "-m", "pip", "list", "--format", "json"], venv, 60)
    assert listed.returncode == 0, listed.stderr
    names = {entry["name"].lower().replace("_", "-") for entry in json.loads(listed.stdout)}
    assert DISTRIBUTION in names
    assert {"connectrpc", "protobuf-py", "pyqwest"} <= names
    assert not names & SERVER_ONLY_DISTRIBUTIONS, sorted(names & SERVER_ONLY_DISTRIBUTIONS)


def test_installed_alone_it_calls_the_runtime(sdk_python: Path, pyvoy_url: str) -> None:
    venv = sdk_python.parent.parent
    probe = _run(
        [str(sdk_python), "-c", PROBE, pyvoy_url, *SERVER_ONLY_MODULES],
        cwd=venv,  # not the checkout: its app/ must not be on sys.path
        timeout=120,
    )
    assert probe.returncode == 0, probe.stdout + probe.stderr
    report: dict[str, Any] = json.loads(probe.stdout.strip().splitlines()[-1])
    # Installed into the venv (a copy), not the checkout's editable source.
    assert Path(report["sdk_file"]).resolve().is_relative_to(venv.resolve()), report["sdk_file"]
    assert report["output"] == {"greeting": "Hello, Ada!"}
    assert report["importable"] == [], f"server modules importable from the SDK's venv: {report}"
    assert report["loaded"] == []
    assert set(report["requires"]) == ALLOWED_REQUIREMENTS, report["requires"]
    assert report["client_class"] == "WasmExtensionRuntimeClientSync"
