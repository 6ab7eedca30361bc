// `node --import SDK/register.mjs --test`: resolves "autoheal-sdk" and
// "autoheal-sdk/testing" to this SDK without a node_modules link (how
// `cargo xtask test` runs the bundled plugins' tests).
import { register } from "node:module";

register("./resolve.mjs", import.meta.url);
