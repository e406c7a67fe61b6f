"""The TypeScript client as a plain ``node`` program imports it: built JS, exports map, types.

The package is compiled from the current sources (``tsconfig.build.json``, as
``make ts-build`` does) into a copy installed under a scratch project's
``node_modules``, and plain ``.mjs`` scripts import it by name and call the
running service over Connect and gRPC-web.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests import _node
from tests._servers import ROOT

TS = ROOT / "clients" / "ts"
PACKAGE = "@ameide/extensions-runtime-client"

SCRIPT = """
import { createRuntimeClient, ExtensionError } from "@ameide/extensions-runtime-client";

const url = process.argv[2];
const out = {};
for (const transport of ["connect", "grpc-web"]) {
  const client = createRuntimeClient(url, { transport });
  const result = await client.invoke("echo", { n: 1, name: "Ada" });
  out[transport] = { output: result.output, version: result.resolvedVersion };
}
try {
  await createRuntimeClient(url).invoke("hello", [1], { includeLogs: true });
} catch (err) {
  out.error = { isTyped: err instanceof ExtensionError, kind: err.kind, logs: err.logs };
}
console.log(JSON.stringify(out));
"""

# Exact numbers: the script prints what it read with the SDK's own stringifyJson,
# plus the JavaScript types, so a rounding or a float cannot hide.
EXACT_SCRIPT = """
import { createRuntimeClient, parseJson, stringifyJson } from "@ameide/extensions-runtime-client";

const url = process.argv[2];
const input = parseJson('{"id": 9007199254740993, "n": 1, "big": 12345678901234567890, "f": 1.5}');
const out = { input: stringifyJson(input), parsedTypes: [typeof input.id, typeof input.n] };
for (const [name, options] of [
  ["connect", { transport: "connect" }],
  ["connect-binary", { transport: "connect", binary: true }],
  ["grpc-web", { transport: "grpc-web" }],
]) {
  const client = createRuntimeClient(url, options);
  const result = await client.invoke("echo", input);
  const words = await client.invoke("wordcount", { text: "a b" });
  out[name] = {
    output: stringifyJson(result.output),
    types: [typeof result.output.id, typeof result.output.n, typeof result.output.f],
    words: stringifyJson(words.output),
  };
}
try {
  await createRuntimeClient(url).invoke("echo", { x: NaN });
} catch (err) {
  out.nan = err.kind;
}
const notJson = new TextEncoder().encode("not json");
try {
  await createRuntimeClient(url).invoke("echo", notJson, { outputFormat: "json" });
} catch (err) {
  out.notJson = err.kind;
}
const text = await createRuntimeClient(url).invoke("echo", notJson);
out.text = [text.isJson, new TextDecoder().decode(text.output)];
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch project with the package built from the current sources installed."""
    app = tmp_path_factory.mktemp("ts-node") / "app"
    installed = app / "node_modules" / PACKAGE
    installed.mkdir(parents=True)
    shutil.copy(TS / "package.json", installed / "package.json")
    (installed / "node_modules").symlink_to(TS / "node_modules")  # its dependencies
    tsc = TS / "node_modules" / ".bin" / "tsc"
    built = _node.run(
        [str(tsc), "-p", str(TS / "tsconfig.build.json"), "--outDir", str(installed / "dist")],
        cwd=TS,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert (installed / "dist" / "index.d.ts").is_file(), "declarations are built"
    return app


def run_script(app: Path, name: str, text: str, url: str) -> Any:
    """Runs ``text`` as ``app/name`` with node; what it printed, as JSON."""
    script = app / name
    script.write_text(text)
    done = _node.run([_node.node(), str(script), url], cwd=app)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_plain_node_script_calls_the_service(pyvoy_url: str, app_dir: Path) -> None:
    answer = run_script(app_dir, "main.mjs", SCRIPT, pyvoy_url)
    for transport in ("connect", "grpc-web"):
        assert answer[transport] == {"output": {"n": 1, "name": "Ada"}, "version": "1.0.0"}
    assert answer["error"]["isTyped"] and answer["error"]["kind"] == "TRAP"
    assert any("JSON object" in line["message"] for line in answer["error"]["logs"])


def test_numbers_come_back_exactly(pyvoy_url: str, app_dir: Path) -> None:
    answer = run_script(app_dir, "exact.mjs", EXACT_SCRIPT, pyvoy_url)
    exact = '{"id":9007199254740993,"n":1,"big":12345678901234567890,"f":1.5}'
    assert answer["input"] == exact
    assert answer["parsedTypes"] == ["bigint", "number"]
    for name in ("connect", "connect-binary", "grpc-web"):
        assert answer[name] == {
            "output": exact,
            "types": ["bigint", "number", "number"],
            "words": '{"words":2,"lines":1,"bytes":3}',
        }, name
    assert answer["nan"] == "INVALID_INPUT"  # refused before it is sent
    assert answer["notJson"] == "INVALID_OUTPUT"  # decided by the SDK, as in Python
    assert answer["text"] == [False, "not json"]
