"""The example extensions: manifests, committed modules, behaviour and rebuilds.

Modules run in wasmtime directly (not through ``app.sandbox``) with a fuel
budget and the manifest's memory limit, so these tests pin down what each
example does, independent of the runtime under test elsewhere.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import wasmtime

from app.catalog import ExtensionDefinition

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
EXTENSIONS = EXAMPLES / "extensions"

DEFAULT_FUEL = 200_000_000
DEFAULT_MEMORY = 64 * 1024 * 1024
MANIFEST_FIELDS = {
    "id",
    "version",
    "abi",
    "risk_tier",
    "wasm_blob_ref",
    "sha256",
    "limits",
    "host_calls",
    "config",
    "description",
}
LIMIT_FIELDS = {"fuel", "memory_bytes", "timeout_ms", "output_bytes", "max_host_calls", "log_bytes"}
ZERO_ALLOWED = {"max_host_calls"}  # the sandbox refuses log_bytes 0
HOST_CALLS = {
    "enrich": ["graph/GetNode"],
    "enrich-py": ["graph/GetNode"],
}  # every other example makes no host calls
DENIED = json.dumps({"error": {"kind": "HOST_CALL_DENIED", "message": "test"}}).encode()


def _load_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("examples_build", EXAMPLES / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


build = _load_build()
CORE = [e for e in build.ALL if not e.component]
"""Modules these tests run in wasmtime directly; components run through the
sandbox and the service (tests/examples/test_components.py, tests/integration)."""


def _definitions() -> list[Path]:
    return sorted(EXTENSIONS.glob("*/*/extension.json"))


def _manifest(extension_id: str) -> dict[str, Any]:
    version = json.loads((EXTENSIONS / extension_id / "promoted.json").read_text())["version"]
    manifest: dict[str, Any] = json.loads(
        (EXTENSIONS / extension_id / version / "extension.json").read_text()
    )
    return manifest


def _module_bytes(extension_id: str) -> bytes:
    return (EXTENSIONS / _manifest(extension_id)["wasm_blob_ref"]["key"]).read_bytes()


# ---- running a module the way the runtime does ------------------------------


@dataclass
class Run:
    output: bytes
    logs: list[tuple[int, str]] = field(default_factory=list)
    exit_code: int = 0
    fuel: int = 0
    host_requests: list[bytes] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.output)

    def same_behaviour(self) -> tuple[bytes, list[tuple[int, str]], int]:
        return self.output, self.logs, self.exit_code


@pytest.fixture(scope="module")
def engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    config.consume_fuel = True
    return wasmtime.Engine(config)


def _i32() -> wasmtime.ValType:
    return wasmtime.ValType.i32()


def _memory(caller: wasmtime.Caller) -> wasmtime.Memory:
    memory = caller.get("memory")
    assert isinstance(memory, wasmtime.Memory)
    return memory


def _linker(
    engine: wasmtime.Engine,
    logs: list[tuple[int, str]],
    requests: list[bytes] | None = None,
    answer: bytes | None = DENIED,
) -> wasmtime.Linker:
    """The ``ameide`` host functions: logs and host-call requests are collected.

    Every host call gets ``answer`` (a denial unless told otherwise; ``None``
    answers -1, "no response", as the runtime does when it stops the guest).
    """
    linker = wasmtime.Linker(engine)
    seen = requests if requests is not None else []

    def host_log(caller: wasmtime.Caller, level: int, ptr: int, length: int) -> None:
        ptr, length = ptr & 0xFFFFFFFF, length & 0xFFFFFFFF
        logs.append((level, bytes(_memory(caller).read(caller, ptr, ptr + length)).decode()))

    def host_call(caller: wasmtime.Caller, ptr: int, length: int) -> int:
        ptr, length = ptr & 0xFFFFFFFF, length & 0xFFFFFFFF
        seen.append(bytes(_memory(caller).read(caller, ptr, ptr + length)))
        if answer is None:
            return -1
        alloc = caller.get("alloc")
        assert isinstance(alloc, wasmtime.Func)
        ptr = alloc(caller, len(answer)) & 0xFFFFFFFF
        _memory(caller).write(caller, answer, ptr)
        return (ptr << 32 | len(answer)) - (1 << 64 if ptr >= 1 << 31 else 0)

    linker.define_func(
        "ameide", "host_log", wasmtime.FuncType([_i32()] * 3, []), host_log, access_caller=True
    )
    linker.define_func(
        "ameide",
        "host_call",
        wasmtime.FuncType([_i32()] * 2, [wasmtime.ValType.i64()]),
        host_call,
        access_caller=True,
    )
    return linker


def _store(engine: wasmtime.Engine, limits: dict[str, Any]) -> tuple[wasmtime.Store, int]:
    store = wasmtime.Store(engine)
    fuel = limits.get("fuel") or DEFAULT_FUEL
    store.set_fuel(fuel)
    store.set_limits(memory_size=limits.get("memory_bytes") or DEFAULT_MEMORY)
    return store, fuel


def run_raw(
    engine: wasmtime.Engine,
    wasm: bytes,
    data: bytes,
    limits: dict[str, Any],
    answer: bytes | None = DENIED,
) -> Run:
    store, fuel = _store(engine, limits)
    logs: list[tuple[int, str]] = []
    requests: list[bytes] = []
    linker = _linker(engine, logs, requests, answer)
    instance = linker.instantiate(store, wasmtime.Module(engine, wasm))
    exports = instance.exports(store)
    memory, alloc, handle = exports["memory"], exports["alloc"], exports["handle"]
    assert isinstance(memory, wasmtime.Memory)
    assert isinstance(alloc, wasmtime.Func) and isinstance(handle, wasmtime.Func)
    ptr = alloc(store, len(data)) & 0xFFFFFFFF
    memory.write(store, data, ptr)
    packed = handle(store, ptr, len(data)) & 0xFFFFFFFFFFFFFFFF
    out_ptr, out_len = packed >> 32, packed & 0xFFFFFFFF
    output = bytes(memory.read(store, out_ptr, out_ptr + out_len))
    return Run(output, logs, 0, fuel - store.get_fuel(), requests)


def run_wasi(
    engine: wasmtime.Engine,
    wasm: bytes,
    data: bytes,
    limits: dict[str, Any],
    answer: bytes | None = DENIED,
) -> Run:
    store, fuel = _store(engine, limits)
    logs: list[tuple[int, str]] = []
    requests: list[bytes] = []
    linker = _linker(engine, logs, requests, answer)
    linker.define_wasi()
    with tempfile.TemporaryDirectory(prefix="wasi-stdio-") as tmp:
        stdin, stdout, stderr = (Path(tmp, name) for name in ("stdin", "stdout", "stderr"))
        stdin.write_bytes(data)
        wasi = wasmtime.WasiConfig()  # no preopens, no environment, no arguments
        wasi.stdin_file = str(stdin)
        wasi.stdout_file = str(stdout)
        wasi.stderr_file = str(stderr)
        store.set_wasi(wasi)
        instance = linker.instantiate(store, wasmtime.Module(engine, wasm))
        start = instance.exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        exit_code = 0
        try:
            start(store)
        except wasmtime.ExitTrap as exit_:
            exit_code = exit_.code
        logs += [(2, line) for line in stderr.read_text().splitlines()]
        return Run(stdout.read_bytes(), logs, exit_code, fuel - store.get_fuel(), requests)


def run(
    engine: wasmtime.Engine,
    extension_id: str,
    data: bytes,
    wasm: bytes | None = None,
    *,
    answer: bytes | None = DENIED,
) -> Run:
    manifest = _manifest(extension_id)
    runner = run_raw if manifest["abi"] == "raw" else run_wasi
    return runner(engine, wasm or _module_bytes(extension_id), data, manifest["limits"], answer)


# ---- manifests ---------------------------------------------------------------


def test_every_example_has_a_manifest_and_a_source() -> None:
    built = {(e.id, e.version) for e in build.ALL}
    published = {(p.parent.parent.name, p.parent.name) for p in _definitions()}
    assert built == published
    assert {e.id for e in build.ALL} >= {"hello", "echo", "wordcount", "spin"}
    for example in build.ALL:
        assert example.source_path.is_file(), example.source_path


@pytest.mark.parametrize("path", _definitions(), ids=lambda p: f"{p.parent.parent.name}")
def test_manifest_is_a_valid_definition(path: Path) -> None:
    extension_id, version = path.parent.parent.name, path.parent.name
    manifest = json.loads(path.read_text())
    assert set(manifest) == MANIFEST_FIELDS
    assert (manifest["id"], manifest["version"]) == (extension_id, version)
    assert manifest["abi"] in {"raw", "wasi-stdio", "component"}
    assert manifest["wasm_blob_ref"] == {"key": f"{extension_id}/{version}/module.wasm"}
    assert set(manifest["limits"]) <= LIMIT_FIELDS
    for name, value in manifest["limits"].items():
        floor = 0 if name in ZERO_ALLOWED else 1
        assert value is None or (type(value) is int and value >= floor), (name, value)
    assert manifest["host_calls"] == HOST_CALLS.get(extension_id, [])
    if manifest["host_calls"]:
        assert manifest["limits"]["max_host_calls"] >= 1
        assert manifest["risk_tier"] != "pure"
    assert isinstance(manifest["config"], dict)
    assert manifest["description"]
    # ... and the runtime's own (strict) model accepts it as it is.
    definition = ExtensionDefinition.from_json(path.read_bytes())
    assert definition.abi == manifest["abi"]


@pytest.mark.parametrize("path", _definitions(), ids=lambda p: f"{p.parent.parent.name}")
def test_sha256_matches_the_committed_module(path: Path) -> None:
    manifest = json.loads(path.read_text())
    wasm = (EXTENSIONS / manifest["wasm_blob_ref"]["key"]).read_bytes()
    assert hashlib.sha256(wasm).hexdigest() == manifest["sha256"], (
        f"{path} is stale: run `make examples`"
    )


@pytest.mark.parametrize("extension_id", sorted(p.name for p in EXTENSIONS.iterdir()))
def test_promoted_points_at_an_existing_version(extension_id: str) -> None:
    promoted = json.loads((EXTENSIONS / extension_id / "promoted.json").read_text())
    assert set(promoted) == {"version"}
    assert (EXTENSIONS / extension_id / promoted["version"] / "extension.json").is_file()
    assert (EXTENSIONS / extension_id / promoted["version"] / "module.wasm").is_file()


@pytest.mark.parametrize("example", CORE, ids=lambda e: e.id)
def test_module_matches_its_abi(engine: wasmtime.Engine, example: Any) -> None:
    module = wasmtime.Module(engine, example.module_path.read_bytes())
    abi = _manifest(example.id)["abi"]
    exports = {e.name: e.type for e in module.exports}
    imports = {(i.module, i.name) for i in module.imports}

    def signature(name: str) -> tuple[list[str], list[str]]:
        ty = exports[name]
        assert isinstance(ty, wasmtime.FuncType)
        return [str(t) for t in ty.params], [str(t) for t in ty.results]

    assert isinstance(exports.get("memory"), wasmtime.MemoryType)
    if abi == "raw":
        assert signature("alloc") == (["i32"], ["i32"])
        assert signature("handle") == (["i32", "i32"], ["i64"])
        assert {m for m, _ in imports} <= {"ameide"}
    else:
        assert signature("_start") == ([], [])
        assert {m for m, _ in imports} <= {"ameide", "wasi_snapshot_preview1"}


@pytest.mark.parametrize("example", build.ALL, ids=lambda e: e.id)
def test_readme_carries_the_exact_build_command(example: Any) -> None:
    readme = (example.source_path.parent / "README.md").read_text()
    assert example.command_line() in readme


@pytest.mark.parametrize("example", [e for e in CORE if not e.is_c], ids=lambda e: e.id)
def test_wat_modules_are_fresh(example: Any) -> None:
    """wat2wasm is deterministic, so a committed WAT module must equal a fresh build."""
    fresh = bytes(wasmtime.wat2wasm(example.source_path.read_text()))
    assert fresh == example.module_path.read_bytes(), "stale module: run `make examples`"


# ---- behaviour -----------------------------------------------------------------


def _greeting(run_: Run) -> str:
    assert run_.exit_code == 0, run_.logs
    body = run_.json()
    assert set(body) == {"greeting"}
    greeting: str = body["greeting"]
    return greeting


def test_hello_greets_by_name(engine: wasmtime.Engine) -> None:
    result = run(engine, "hello", b'{"name":"Ada"}')
    assert result.output == b'{"greeting":"Hello, Ada!"}'
    assert result.logs == [(2, "hello: greeting a name of 3 bytes")]
    assert result.exit_code == 0


@pytest.mark.parametrize(
    "data", [b"", b"{}", b'  {"name": 42}\n', b'{"name": null}', b'{"who": "Ada"}']
)
def test_hello_defaults_to_world(engine: wasmtime.Engine, data: bytes) -> None:
    result = run(engine, "hello", data)
    assert _greeting(result) == "Hello, World!"
    assert result.logs == [(2, "hello: no name given, greeting World")]


@pytest.mark.parametrize(
    ("data", "greeting"),
    [
        (b'{"nested": {"name": "no"}, "list": [1, "x", {"a": []}], "name": "Grace"}', "Grace"),
        (rb'{"name": "Ada \"the Countess\" \\ Lovelace"}', 'Ada "the Countess" \\ Lovelace'),
        (
            rb'{"name": "\u00e9l\u00e8ve \ud83d\ude00 line\nbreak\ttab"}',
            "élève 😀 line\nbreak\ttab",
        ),
        (rb'{"name": "bell\u0007 lone\ud800"}', "bell\x07 lone\ufffd"),
        ('{"name": "日本"}'.encode(), "日本"),
        (b'{"name": "bad\xff\xfeutf8"}', "bad\ufffd\ufffdutf8"),
        (b'{"name": "first", "name": "last"}', "last"),
    ],
)
def test_hello_escapes_properly(engine: wasmtime.Engine, data: bytes, greeting: str) -> None:
    result = run(engine, "hello", data)
    assert _greeting(result) == f"Hello, {greeting}!"
    assert result.output.decode("utf-8")  # always valid UTF-8 and valid JSON


@pytest.mark.parametrize("data", [b"[1]", b"Ada", b'"Ada"', b'{"name": "Ada"', b'{"name" "x"}'])
def test_hello_refuses_what_is_not_a_json_object(engine: wasmtime.Engine, data: bytes) -> None:
    result = run(engine, "hello", data)
    assert result.exit_code == 1
    assert result.output == b""
    assert result.logs == [(2, 'hello: input must be a JSON object such as {"name": "Ada"}')]


def test_hello_reads_large_input(engine: wasmtime.Engine) -> None:
    name = "x" * 300_000
    result = run(engine, "hello", json.dumps({"pad": "y" * 100_000, "name": name}).encode())
    assert _greeting(result) == f"Hello, {name}!"


@pytest.mark.parametrize(
    "data",
    [b"", b"hello", b'{"name": "Ada"}', bytes(range(256)) * 800],  # the last one grows memory
    ids=["empty", "short", "json", "200KiB"],
)
def test_echo_returns_its_input(engine: wasmtime.Engine, data: bytes) -> None:
    result = run(engine, "echo", data)
    assert result.output == data
    assert result.logs == []
    assert result.fuel < 200, "echo must stay a minimal workload"


def _reference_counts(text: bytes) -> dict[str, int]:
    lines = text.count(b"\n") + (1 if text and not text.endswith(b"\n") else 0)
    return {"words": len(re.findall(rb"[^ \t\n\v\f\r]+", text)), "lines": lines, "bytes": len(text)}


@pytest.mark.parametrize(
    ("data", "text", "kind"),
    [
        (b'{"text": "hello world\\nsecond line"}', b"hello world\nsecond line", "JSON object"),
        (b"one two  three\n", b"one two  three\n", "raw text"),
        (b'  "a b"  ', b"a b", "JSON string"),
        (b'{"text": ""}', b"", "JSON object"),
        (b"", b"", "raw text"),
        (
            b'{"lang": "fr", "text": "caf\\u00e9 na\\u00efve\\n\\n"}',
            "café naïve\n\n".encode(),
            "JSON object",
        ),
        (b'{"text": "tab\\tsep\\r\\nwin\\u000bvt"}', b"tab\tsep\r\nwin\x0bvt", "JSON object"),
        (b'{"text": "abc', b'{"text": "abc', "raw text"),  # malformed JSON counts as raw text
        (b'{"text": "a"} trailing', b'{"text": "a"} trailing', "raw text"),
        (b"[1, 2]", b"[1, 2]", "raw text"),
    ],
)
def test_wordcount_counts(engine: wasmtime.Engine, data: bytes, text: bytes, kind: str) -> None:
    result = run(engine, "wordcount", data)
    expected = _reference_counts(text)
    assert (
        result.output
        == (
            f'{{"words":{expected["words"]},"lines":{expected["lines"]},"bytes":{expected["bytes"]}}}'
        ).encode()
    )
    assert result.json() == expected
    [(level, line)] = result.logs
    assert level == 2
    assert line == (
        f"wordcount: {kind}, {expected['words']} words,"
        f" {expected['lines']} lines, {expected['bytes']} bytes"
    )


def test_wordcount_warns_about_an_object_without_text(engine: wasmtime.Engine) -> None:
    result = run(engine, "wordcount", b'{"body": "a b c", "text": 3}')
    assert result.json() == {"words": 0, "lines": 0, "bytes": 0}
    assert result.logs == [(3, 'wordcount: JSON object without a "text" string, counted nothing')]


def test_wordcount_large_input_grows_memory(engine: wasmtime.Engine) -> None:
    text = " ".join(f"w{i}" for i in range(200_000)) + "\n" + "last line"
    result = run(engine, "wordcount", json.dumps({"text": text}).encode())
    assert result.json() == _reference_counts(text.encode())
    assert result.fuel < _manifest("wordcount")["limits"]["fuel"]


def _xorshift_result(n: int) -> int:
    x, mask = 0x9E3779B97F4A7C15, (1 << 64) - 1
    for _ in range(n):
        x ^= (x << 13) & mask
        x ^= x >> 7
        x ^= (x << 17) & mask
    return x >> 32


@pytest.mark.parametrize(
    ("data", "n"),
    [
        (b"", 0),
        (b"0", 0),
        (b"1", 1),
        (b"1000", 1000),
        (b'{"iterations": 12345}', 12345),
        (b"12345 and 678", 12345),
        (b'{"iterations": 1000000}', 1_000_000),
    ],
)
def test_spin_computes(engine: wasmtime.Engine, data: bytes, n: int) -> None:
    result = run(engine, "spin", data)
    expected = 1047816836 if n == 1_000_000 else _xorshift_result(n)
    assert result.json() == {"result": expected}
    assert result.output == f'{{"result":{expected}}}'.encode()
    assert result.logs == []
    assert 26 * n <= result.fuel <= 26 * n + 1000


def test_spin_is_stopped_by_fuel(engine: wasmtime.Engine) -> None:
    with pytest.raises(wasmtime.Trap) as trap:
        run(engine, "spin", b"999999999999")
    assert trap.value.trap_code == wasmtime.TrapCode.OUT_OF_FUEL


def test_enrich_calls_graph_and_splices_the_answer(engine: wasmtime.Engine) -> None:
    answer = b'{"status":200,"body":{"id":"n1","name":"Node One"}}'
    result = run(engine, "enrich", b'{"id": "n1"}', answer=answer)
    assert result.host_requests == [b'{"service":"graph","method":"GetNode","body":{"id": "n1"}}']
    assert json.loads(result.host_requests[0]) == {
        "service": "graph",
        "method": "GetNode",
        "body": {"id": "n1"},
    }
    assert result.output == b'{"input":{"id": "n1"},"enriched":' + answer + b"}"
    assert result.json() == {
        "input": {"id": "n1"},
        "enriched": {"status": 200, "body": {"id": "n1", "name": "Node One"}},
    }
    assert result.logs == []


def test_enrich_passes_a_refusal_through(engine: wasmtime.Engine) -> None:
    result = run(engine, "enrich", b'{"id":"n2"}')
    assert result.json() == {"input": {"id": "n2"}, "enriched": json.loads(DENIED)}


def test_enrich_without_input_or_answer_still_writes_json(engine: wasmtime.Engine) -> None:
    result = run(engine, "enrich", b"", answer=None)
    assert json.loads(result.host_requests[0])["body"] is None
    assert result.json() == {"input": None, "enriched": None}


def test_enrich_handles_large_answers(engine: wasmtime.Engine) -> None:
    answer = json.dumps({"status": 200, "body": {"blob": "x" * 300_000}}).encode()
    data = json.dumps({"id": "n1", "pad": "y" * 100_000}).encode()
    result = run(engine, "enrich", data, answer=answer)
    assert result.json() == {"input": json.loads(data), "enriched": json.loads(answer)}


# ---- rebuilding from source -----------------------------------------------------

CASES: dict[str, list[bytes]] = {
    "hello": [b'{"name":"Ada"}', b"{}", rb'{"name": "\ud83d\ude00 \"q\""}', b"[1]"],
    "echo": [b"", b"abc" * 30_000],
    "wordcount": [b'{"text": "a b\\nc"}', b"raw text here\n", b'{"x": 1}', b"x " * 50_000],
    "spin": [b"0", b"100000"],
    "enrich": [b'{"id": "n1"}', b"", b"[1, 2, 3]"],
}


def test_cases_cover_every_example() -> None:
    assert set(CASES) == {e.id for e in CORE}


def test_rebuilt_modules_behave_like_the_committed_ones(
    engine: wasmtime.Engine, tmp_path: Path
) -> None:
    try:
        build.check_toolchain()  # CI runs `make guest-toolchain` first: missing is a failure
    except build.ToolchainMissing as missing:
        pytest.fail(str(missing))
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "build.py"), "--out-dir", str(tmp_path)]
        + [e.id for e in CORE],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"examples/build.py failed ({result.returncode}):\n{result.stderr}")
    mismatches: list[str] = []
    for example in CORE:
        rebuilt = (tmp_path / f"{example.id}.wasm").read_bytes()
        committed = example.module_path.read_bytes()
        for data in CASES[example.id]:
            fresh, old = (run(engine, example.id, data, w) for w in (rebuilt, committed))
            if fresh.same_behaviour() != old.same_behaviour():
                mismatches.append(f"{example.id}: {data[:40]!r}")
    assert not mismatches, mismatches
