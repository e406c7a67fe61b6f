"""Components through the real service: Python, JavaScript and C examples answer over
Connect JSON and gRPC, and promoting a new Python version under traffic never makes
a caller wait for its compile.

One ``serve --dev`` (pyvoy) serves a copy of ``examples/extensions``; its disk
cache is private to this module, so the first calls compile each component
(seconds: they are retried while the answer is the typed UNAVAILABLE).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb

from tests._clients import connect_json, grpc_invoke
from tests._servers import ROOT, cli_server

pytestmark = pytest.mark.integration

EXAMPLES = ROOT / "examples" / "extensions"
GREETING = {"greeting": "Hello, Ada!"}
CONTEXT = {"tenantId": "t1", "organizationId": "o1", "userId": "u1"}


def _call(url: str, extension: str, payload: Any, **headers: str) -> httpx.Response:
    body = {"extensionId": extension, "inputJson": payload, "context": CONTEXT}
    return connect_json(url, body, **headers)


def _ready(url: str, extension: str) -> None:
    """Call until the first compile is done (UNAVAILABLE meanwhile), at most 3 minutes."""
    give_up = time.monotonic() + 180
    while True:
        response = _call(url, extension, {"name": "Ada"})
        if response.status_code == 200:
            return
        assert response.json()["code"] == "unavailable", response.text
        assert time.monotonic() < give_up, f"{extension} never became ready"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def extensions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("component-extensions") / "extensions"
    shutil.copytree(EXAMPLES, root)
    return root


@pytest.fixture(scope="module")
def served(extensions: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {
        "EXTENSIONS_RUNTIME_EXTENSIONS_DIR": str(extensions),
        "EXTENSIONS_RUNTIME_MODULE_CACHE_DIR": str(tmp_path_factory.mktemp("component-cache")),
    }
    with cli_server(env=env) as url:
        yield url


@pytest.mark.parametrize("extension", ["hello-py", "hello-js", "hello-c"])
def test_a_component_answers_over_connect_json_and_grpc(served: str, extension: str) -> None:
    _ready(served, extension)
    response = _call(served, extension, {"name": "Ada"}, **{"x-include-logs": "true"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["outputJson"] == GREETING
    assert body["resolvedVersion"] == "1.0.0"
    reply = grpc_invoke(served, _grpc_request(extension, {"name": "Grace"}))
    assert reply.resolved_version == "1.0.0"
    assert reply.output is not None and reply.output.field == "output_json"
    assert reply.output.value.to_python() == {"greeting": "Hello, Grace!"}


def _grpc_request(extension: str, payload: Any) -> runtime_pb.InvokeExtensionRequest:
    body = {"extensionId": extension, "inputJson": payload, "context": CONTEXT}
    return runtime_pb.InvokeExtensionRequest.from_json(json.dumps(body))


def test_a_guest_error_reaches_the_caller_typed(served: str) -> None:
    _ready(served, "hello-py")
    response = _call(served, "hello-py", "not an object")
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == "failed_precondition"
    detail = error["details"][0]["debug"]
    assert detail["kind"] == "ERROR_KIND_GUEST_ERROR"
    with pytest.raises(grpc.RpcError) as caught:
        grpc_invoke(served, _grpc_request("hello-py", []))
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION


def _new_version(extensions: Path, extension: str, version: str) -> None:
    """Publish ``version`` as the same component plus a custom section: new bytes,
    new digest, so the runtime must compile it, as for any new build."""
    import hashlib

    source = extensions / extension / "1.0.0"
    target = extensions / extension / version
    target.mkdir()
    name = b"ameide-build"
    content = version.encode()
    payload = bytes([len(name)]) + name + content
    wasm = (source / "module.wasm").read_bytes() + b"\x00" + _leb(len(payload)) + payload
    (target / "module.wasm").write_bytes(wasm)
    definition = json.loads((source / "extension.json").read_text())
    definition["version"] = version
    definition["wasm_blob_ref"]["key"] = f"{extension}/{version}/module.wasm"
    definition["sha256"] = hashlib.sha256(wasm).hexdigest()
    (target / "extension.json").write_text(json.dumps(definition))
    pointer = extensions / extension / "promoted.json"
    pointer.with_suffix(".tmp").write_text(json.dumps({"version": version}))
    pointer.with_suffix(".tmp").replace(pointer)


def _leb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def test_promoting_a_python_version_under_traffic_never_waits_for_its_compile(
    served: str, extensions: Path
) -> None:
    _ready(served, "hello-py")
    results: list[tuple[int, str, float]] = []
    stop = threading.Event()
    body = {"extensionId": "hello-py", "inputJson": {"name": "Ada"}, "context": CONTEXT}

    def traffic() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                started = time.monotonic()
                response = client.post(
                    served + "/ameide.extensions.v1.WasmExtensionRuntime/InvokeExtension",
                    json=body,
                    headers={"connect-timeout-ms": "2000"},
                )
                ok = response.status_code == 200
                version = response.json().get("resolvedVersion", "") if ok else response.text
                results.append((response.status_code, version, time.monotonic() - started))

    threads = [threading.Thread(target=traffic) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        _new_version(extensions, "hello-py", "1.0.1")
        give_up = time.monotonic() + 180
        while not any(version == "1.0.1" for _, version, _ in results[-5:]):
            assert time.monotonic() < give_up, "the new version was never followed"
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    failures = [r for r in results if r[0] != 200]
    assert not failures, failures[:3]
    versions = [version for _, version, _ in results]
    switch = versions.index("1.0.1")
    assert set(versions[:switch]) == {"1.0.0"} and set(versions[switch:]) <= {"1.0.0", "1.0.1"}
    assert len(versions) > 10  # traffic flowed the whole time the new version compiled
