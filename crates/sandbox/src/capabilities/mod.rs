//! One module per capability a plugin can import: what each call checks,
//! does, bounds and records (on the gate), and how each version of the WIT
//! contract reaches it. The gate itself (budget, records, breakers,
//! intents) is `crate::capability`; the manifest section of a capability
//! is validated by `autoheal_manifest`.

mod containers;
mod containers_imports;
mod pending;
pub(crate) mod prometheus;
mod prometheus_answer;
mod prometheus_imports;
pub(crate) mod state;
mod state_imports;
