//! One module per capability a plugin can import: what each call checks,
//! does, bounds and records (on the gate), and how each version of the WIT
//! contract reaches it. The gate itself (budget, records, breakers,
//! intents) is `crate::capability`; the manifest section of a capability
//! is validated by `autoheal_manifest`.

mod containers;
mod containers_imports;
mod http;
mod http_imports;
mod http_net;
mod secrets;

pub use http::{HttpCall, HttpServices};
pub use http_net::{HttpTransport, Inbound, NetError, NetTransport, Outbound};
pub(crate) use secrets::Scrubber;
pub use secrets::{MIN_SECRET_BYTES, Secrets};
pub(crate) mod prometheus;
mod prometheus_answer;
mod prometheus_imports;
pub(crate) mod state;
mod state_imports;
