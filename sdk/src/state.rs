//! A small key-value store of the plugin's own, kept across invocations
//! (and restarts of the host; shared by the replicas of a cluster), when the
//! manifest has `[capabilities.state]`. Keys are 1 to 128 characters of
//! `[A-Za-z0-9_.:-]`; the manifest bounds their number and the values'
//! size. Writes are effects: in dry-run they are recorded and not kept.
//!
//! ```no_run
//! use autoheal_sdk::state;
//! use std::time::Duration;
//!
//! let tries: u32 = state::get("tries:crm-api")
//!     .map_err(|e| e.to_string())?
//!     .and_then(|v| v.parse().ok())
//!     .unwrap_or(0);
//! state::set("tries:crm-api", &(tries + 1).to_string(), Some(Duration::from_secs(3600)))
//!     .map_err(|e| e.to_string())?;
//! # Ok::<(), String>(())
//! ```

use std::fmt;
use std::time::Duration;

use crate::host;

/// Why a state call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// No `[capabilities.state]`, a key or value past the bounds, or a host
    /// guard refused the call.
    Denied(String),
    /// The store could not be read or written.
    Failed(String),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Denied(msg) => write!(f, "denied: {msg}"),
            StateError::Failed(msg) => write!(f, "failed: {msg}"),
        }
    }
}

impl std::error::Error for StateError {}

/// The value of `key`, if set and not expired.
pub fn get(key: &str) -> Result<Option<String>, StateError> {
    host::state_get(key)
}

/// Sets `key` to `value` for `ttl` (whole seconds; `None`: the manifest's
/// `max_ttl`).
pub fn set(key: &str, value: &str, ttl: Option<Duration>) -> Result<(), StateError> {
    host::state_set(key, value, ttl.map(|t| t.as_secs()))
}

/// Removes `key`; `false` if it was not set.
pub fn delete(key: &str) -> Result<bool, StateError> {
    host::state_delete(key)
}

mod wit_types {
    use super::*;
    use crate::bindings::autoheal::plugin::state as wit;

    impl From<wit::Error> for StateError {
        fn from(e: wit::Error) -> Self {
            match e {
                wit::Error::Denied(m) => StateError::Denied(m),
                wit::Error::Failed(m) => StateError::Failed(m),
            }
        }
    }
}
