//! The container engine behind the `containers` capability.
//!
//! Plugins never reach an engine directly: the capability gate checks each
//! call and only then goes through a [`ContainerRuntime`].

#![warn(missing_docs)]

mod discovery;
mod docker;
mod engines;
mod fake;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use discovery::{AddressError, DiscoverError, EngineAddress, discover};
pub use docker::{DockerRuntime, EngineTls};
pub use engines::{DEFAULT_ENGINE, EngineReach, Engines};
pub use fake::FakeRuntime;

/// What `inspect` tells a plugin about a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// The container's name, as the engine knows it.
    pub name: String,
    /// `running`, `exited`, `restarting`, ...
    pub state: String,
    /// RFC 3339.
    pub started_at: String,
    /// Restarts the engine has made (its own policy's and ours).
    pub restart_count: u32,
    /// `healthy`, `unhealthy` or `starting`; `None` without a health check.
    pub health: Option<String>,
}

/// Why an engine call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ContainerError {
    /// No container has this name.
    #[error("container {0} not found")]
    NotFound(String),
    /// The engine failed or is unreachable; the message says which engine.
    #[error("{0}")]
    Runtime(String),
}

/// A container engine. Implementations keep their own deadlines: a call never hangs.
#[async_trait]
pub trait ContainerRuntime: Send + Sync {
    /// Where this runtime sends calls, for status pages and errors.
    fn describe(&self) -> String;
    /// The state of the container `name`.
    async fn inspect(&self, name: &str) -> Result<ContainerInfo, ContainerError>;
    /// Restarts `name`, giving it `stop_timeout` to stop first.
    async fn restart(&self, name: &str, stop_timeout: Duration) -> Result<(), ContainerError>;
    /// The engine's version, which also proves it is reachable.
    async fn version(&self) -> Result<String, ContainerError>;
    /// Each engine behind this runtime (one, unless it is [`Engines`]) and
    /// whether it answers within `limit`.
    async fn reachability(&self, limit: Duration) -> Vec<EngineReach> {
        let version = match tokio::time::timeout(limit, self.version()).await {
            Ok(Ok(version)) => Ok(version),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {limit:?}")),
        };
        vec![EngineReach {
            name: DEFAULT_ENGINE.to_owned(),
            address: self.describe(),
            version,
        }]
    }
}

/// The runtime when no engine is configured: every call fails with a reason.
/// Dry-run needs no engine, so the host serves anyway.
pub struct NoEngine;

/// What every call answers when no engine is configured: not an engine
/// that went away, one that was never there.
pub const NO_ENGINE: &str = "no container engine is configured";

#[async_trait]
impl ContainerRuntime for NoEngine {
    fn describe(&self) -> String {
        "none".into()
    }
    async fn inspect(&self, _name: &str) -> Result<ContainerInfo, ContainerError> {
        Err(ContainerError::Runtime(NO_ENGINE.into()))
    }
    async fn restart(&self, _name: &str, _stop: Duration) -> Result<(), ContainerError> {
        Err(ContainerError::Runtime(NO_ENGINE.into()))
    }
    async fn version(&self) -> Result<String, ContainerError> {
        Err(ContainerError::Runtime(NO_ENGINE.into()))
    }
}

/// Seconds since an RFC 3339 time, if it parses and is not in the future.
pub fn uptime_seconds(started_at: &str) -> Option<u64> {
    let started = chrono::DateTime::parse_from_rfc3339(started_at).ok()?;
    let age = chrono::Utc::now().signed_duration_since(started);
    u64::try_from(age.num_seconds()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_parses_offsets_and_rejects_garbage() {
        assert!(uptime_seconds("2020-01-01T00:00:00+02:00").unwrap() > 100_000);
        assert!(uptime_seconds("2020-01-01T00:00:00.123456789Z").is_some());
        assert_eq!(uptime_seconds("yesterday"), None);
    }
}
