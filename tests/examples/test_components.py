"""The component examples: their build records are fresh, C rebuilds to the same bytes,
and each answers through the sandbox as its README says.

Python and JavaScript builds are not reproducible byte for byte (the snapshot
differs), so ``make examples`` records the digest of the sources a module was
built from (``built.json``); a source edited without a rebuild fails here.
Through the service (Connect JSON, gRPC, host calls) they run in
tests/integration/test_components.py and test_hostcalls.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from app.authoring import Language
from app.authoring import build as build_component
from app.errors import ErrorKind, InvocationFailure
from app.invocation import ExecutionContext
from app.sandbox import DeclaredLimits, SandboxEngine, default_abi, effective_limits, run
from app.settings import Settings
from tests.examples.test_examples import build

COMPONENTS = [e for e in build.ALL if e.component]


def test_every_authoring_language_has_an_example() -> None:
    assert {e.component for e in COMPONENTS} == {"python", "js", "c"}
    calling = [e for e in COMPONENTS if json.loads(e.manifest_path.read_text())["host_calls"]]
    assert [e.component for e in calling] == ["python"]


@pytest.mark.parametrize("example", COMPONENTS, ids=lambda e: e.id)
def test_the_committed_component_was_built_from_these_sources(example: Any) -> None:
    record = json.loads(example.record_path.read_text())
    module_sha = hashlib.sha256(example.module_path.read_bytes()).hexdigest()
    manifest = json.loads(example.manifest_path.read_text())
    assert record["sources_sha256"] == build.source_digest(example), (
        f"{example.id}'s sources changed since its module was built: run `make examples`"
    )
    assert record["module_sha256"] == module_sha == manifest["sha256"]
    assert manifest["abi"] == "component"
    assert default_abi(example.module_path.read_bytes()) == "component"


@pytest.mark.integration
def test_the_c_component_rebuilds_to_the_same_bytes(tmp_path: Path) -> None:
    (example,) = (e for e in COMPONENTS if e.component == "c")
    out = build_component(
        example.source_path.parent, tmp_path / "hello-c.wasm", language=Language.C
    )
    assert out.read_bytes() == example.module_path.read_bytes(), "stale: run `make examples`"


# -- behaviour, through the sandbox with the manifest's limits ---------------------------


@pytest.fixture(scope="module")
def engine() -> Any:
    with SandboxEngine(Settings().engine_config) as sandbox_engine:
        yield sandbox_engine


def _invoke(engine: Any, example_id: str, data: bytes) -> Any:
    example = next(e for e in COMPONENTS if e.id == example_id)
    manifest = json.loads(example.manifest_path.read_text())
    compiled = engine.compile(example.module_path.read_bytes(), "component")
    limits = effective_limits(
        DeclaredLimits.model_validate(manifest["limits"]), Settings().limit_bounds, None
    )
    return run(
        engine,
        compiled,
        data,
        limits,
        context=ExecutionContext(request_id="test"),
        deadline=None,
        include_logs=True,
        config_json=b"{}",
    )


@pytest.mark.parametrize(
    ("data", "greeting"),
    [
        (b'{"name": "Ada"}', "Hello, Ada!"),
        (b"{}", "Hello, World!"),
        (b'{"name": 7}', "Hello, World!"),
        (b'{"name": "A\\"\\u00e9"}', 'Hello, A"\u00e9!'),
    ],
)
def test_hello_c_greets_like_hello(engine: Any, data: bytes, greeting: str) -> None:
    outcome = _invoke(engine, "hello-c", data)
    assert json.loads(outcome.output) == {"greeting": greeting}
    assert [line.message for line in outcome.logs] == ["hello-c: greeting a name"]


@pytest.mark.parametrize("data", [b"[1]", b"Ada", b'{"name": "Ada"'])
def test_hello_c_refuses_what_is_not_a_json_object(engine: Any, data: bytes) -> None:
    with pytest.raises(InvocationFailure) as failed:
        _invoke(engine, "hello-c", data)
    assert failed.value.kind is ErrorKind.GUEST_ERROR
    assert failed.value.message.startswith("invalid_input: ")
