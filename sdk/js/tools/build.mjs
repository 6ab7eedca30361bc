// Builds one autoheal plugin written in JavaScript or TypeScript into a
// WebAssembly component of the autoheal:plugin/action world:
//
//   node build.mjs ENTRY.js|ENTRY.ts OUT.wasm WIT_DIR SDK_FILE
//
// esbuild bundles the entry with the SDK (imported as "autoheal-sdk") into
// one ES module, the host's interfaces left as imports; componentize-js
// makes the component. The bundle's source map is appended to it (lines
// unchanged) so that the SDK maps an error's stack back to app.js. An
// import() esbuild cannot bundle is refused here, with its file and line:
// in the component it would end in a trap. Its http and fetch-event features are off: the world
// imports no wasi:http, and the host grants none.

import { build } from "esbuild";
import { componentize } from "@bytecodealliance/componentize-js";
import { writeFile, rename } from "node:fs/promises";
import { dirname, relative, resolve } from "node:path";

const [entry, out, witPath, sdk] = process.argv.slice(2);
if (!entry || !out || !witPath || !sdk) {
  console.error("usage: node build.mjs ENTRY OUT.wasm WIT_DIR SDK_FILE");
  process.exit(2);
}
let bundled;
try {
  bundled = await build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "neutral",
    write: false,
    outfile: "source.js",
    sourcemap: "external",
    alias: { "autoheal-sdk": resolve(sdk) },
    external: ["log", "autoheal:plugin/*"],
    logLevel: "warning",
    logOverride: { "unsupported-dynamic-import": "error" },
  });
} catch (e) {
  if (String(e.message).includes("import")) {
    console.error(
      "import() is not available in autoheal plugins: import modules statically at the top of the file (esbuild bundles them)",
    );
  }
  process.exit(1);
}
const js = bundled.outputFiles.find((f) => f.path.endsWith(".js"));
const map = JSON.parse(bundled.outputFiles.find((f) => f.path.endsWith(".map")).text);
// Sources named as the author sees them: relative to the entry's directory.
const sources = map.sources.map((s) => relative(dirname(resolve(entry)), resolve(s)));
const source = `${js.text}\nglobalThis.__autohealSourceMap = ${JSON.stringify({ sources, mappings: map.mappings })};\n`;
const { component } = await componentize(source, {
  witPath,
  worldName: "action",
  disableFeatures: ["http", "fetch-event"],
});
// Write-then-rename: a host watching the directory never sees half a file.
await writeFile(`${out}.tmp`, component);
await rename(`${out}.tmp`, out);
console.log(`${out}: ${component.length} bytes`);
