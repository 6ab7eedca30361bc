// Builds one autoheal plugin written in JavaScript or TypeScript into a
// WebAssembly component of the autoheal:plugin/action world:
//
//   node build.mjs ENTRY.js|ENTRY.ts OUT.wasm WIT_DIR SDK_FILE
//
// esbuild bundles the entry with the SDK (imported as "autoheal-sdk") into
// one ES module, the host's interfaces left as imports; componentize-js
// makes the component. Its http and fetch-event features are off: the world
// imports no wasi:http, and the host grants none.

import { build } from "esbuild";
import { componentize } from "@bytecodealliance/componentize-js";
import { writeFile, rename } from "node:fs/promises";
import { resolve } from "node:path";

const [entry, out, witPath, sdk] = process.argv.slice(2);
if (!entry || !out || !witPath || !sdk) {
  console.error("usage: node build.mjs ENTRY OUT.wasm WIT_DIR SDK_FILE");
  process.exit(2);
}
const bundled = await build({
  entryPoints: [entry],
  bundle: true,
  format: "esm",
  platform: "neutral",
  write: false,
  alias: { "autoheal-sdk": resolve(sdk) },
  external: ["log", "autoheal:plugin/*"],
  logLevel: "warning",
});
const source = bundled.outputFiles[0].text;
const { component } = await componentize(source, {
  witPath,
  worldName: "action",
  disableFeatures: ["http", "fetch-event"],
});
// Write-then-rename: a host watching the directory never sees half a file.
await writeFile(`${out}.tmp`, component);
await rename(`${out}.tmp`, out);
console.log(`${out}: ${component.length} bytes`);
