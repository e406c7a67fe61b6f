// Bundles the /debug console (console/main.ts + src/) into one ES module.
//   node build-console.mjs [OUTFILE]   (default ../../app/debug/static/console.js)
// `make console` runs it; tests/clients/test_ts.py runs it into a temp file and
// checks the committed bundle is what these sources build.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const outfile = resolve(process.argv[2] ?? resolve(here, "../../app/debug/static/console.js"));

await build({
  entryPoints: [resolve(here, "console/main.ts")],
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "browser",
  minify: true,
  legalComments: "eof",
  banner: {
    js: "/* extensions-runtime debug console, built from clients/ts by `make console`. " +
      "Bundles @bufbuild/protobuf and @connectrpc/connect(-web), Apache-2.0. */",
  },
  outfile,
  logLevel: "warning",
});
