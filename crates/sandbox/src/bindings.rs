//! Host-side bindings generated from `wit/plugin.wit`.

// Generated code: its items are documented by the WIT file.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    world: "action",
    path: "../../wit",
    imports: { default: async },
    exports: { default: async },
});

pub use self::autoheal::plugin::containers;
pub use self::autoheal::plugin::types;
