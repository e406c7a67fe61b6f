"""The TypeScript client as a plain ``node`` program imports it: built JS, exports map, types.

The package is compiled from the current sources (``tsconfig.build.json``, as
``make ts-build`` does) into a copy installed under a scratch project's
``node_modules``, and a plain ``.mjs`` script imports it by name and calls the
running service over Connect and gRPC-web.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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


def test_plain_node_script_calls_the_service(pyvoy_url: str, tmp_path: Path) -> None:
    node = _node.node()
    installed = tmp_path / "app" / "node_modules" / PACKAGE
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
    script = tmp_path / "app" / "main.mjs"
    script.write_text(SCRIPT)
    done = _node.run([node, str(script), pyvoy_url], cwd=tmp_path / "app")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    for transport in ("connect", "grpc-web"):
        assert answer[transport] == {"output": {"n": 1, "name": "Ada"}, "version": "1.0.0"}
    assert answer["error"]["isTyped"] and answer["error"]["kind"] == "TRAP"
    assert any("JSON object" in line["message"] for line in answer["error"]["logs"])
