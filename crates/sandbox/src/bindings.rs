//! Host-side bindings generated from the plugin contract, one module per
//! version the host runs: `v4` from `wit/` (`autoheal:plugin@0.4.0`, the
//! newest: http, prometheus and state beside containers), `v3` from
//! `wit/v0.3.0` (signals, exec, logs and label selectors beside inspect and
//! restart), `v2` from `wit/v0.2.0` (whose `handle` answers an `outcome`),
//! `v1` from `wit/v0.1.0` (whose `handle` answers a bare string). Each
//! version's interfaces have names of their own (`autoheal:plugin/
//! containers@0.1.0`, `@0.2.0`, `@0.3.0`) but every world imports a root
//! `log`, so each world gets a linker of its own (see `PluginRuntime::new`).

// Generated code: its items are documented by the WIT files.
#![allow(missing_docs)]

pub mod v4 {
    wasmtime::component::bindgen!({
        world: "action",
        path: "../../wit",
        imports: { default: async },
        exports: { default: async },
    });

    pub use self::autoheal::plugin::containers;
    pub use self::autoheal::plugin::http;
    pub use self::autoheal::plugin::prometheus;
    pub use self::autoheal::plugin::state;
    pub use self::autoheal::plugin::types;
}

pub mod v3 {
    wasmtime::component::bindgen!({
        world: "action",
        path: "../../wit/v0.3.0",
        imports: { default: async },
        exports: { default: async },
    });

    pub use self::autoheal::plugin::containers;
    pub use self::autoheal::plugin::types;
}

pub mod v2 {
    wasmtime::component::bindgen!({
        world: "action",
        path: "../../wit/v0.2.0",
        imports: { default: async },
        exports: { default: async },
    });

    pub use self::autoheal::plugin::containers;
    pub use self::autoheal::plugin::types;
}

pub mod v1 {
    wasmtime::component::bindgen!({
        world: "action",
        path: "../../wit/v0.1.0",
        imports: { default: async },
        exports: { default: async },
    });

    pub use self::autoheal::plugin::containers;
    pub use self::autoheal::plugin::types;
}
