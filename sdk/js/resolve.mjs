// The resolve hook of register.mjs.
const files = { "autoheal-sdk": "./core.js", "autoheal-sdk/testing": "./testing.js" };

export async function resolve(specifier, context, next) {
  if (specifier in files) {
    return { url: new URL(files[specifier], import.meta.url).href, shortCircuit: true };
  }
  return next(specifier, context);
}
