//! The container engine behind the `containers` capability.
//!
//! Plugins never reach an engine directly: the capability gate checks each
//! call and only then goes through a [`ContainerRuntime`].

#![warn(missing_docs)]

mod discovery;
mod docker;
mod engines;
mod fake;
mod output;
mod selector;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use discovery::{AddressError, DiscoverError, EngineAddress, discover};
pub use docker::{DockerRuntime, EngineTls};
pub use engines::{DEFAULT_ENGINE, EngineReach, Engines};
pub use fake::FakeRuntime;
pub use selector::{LabelSelector, SelectorError};

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
    /// The container's labels (the gate checks `label:` allow-list entries with them).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Bounds of one exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecLimits {
    /// From the start of the process to the end of its output.
    pub timeout: Duration,
    /// Kept of stdout, and again of stderr; the rest is read and dropped.
    pub max_output_bytes: usize,
}

/// What an exec gave back, each stream cut to `max_output_bytes` (on a char boundary).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExecOutput {
    /// `None` when it timed out (still running) or the engine did not say.
    pub exit_code: Option<i64>,
    /// Its standard output (invalid UTF-8 replaced).
    pub stdout: String,
    /// Its standard error (invalid UTF-8 replaced).
    pub stderr: String,
    /// Some output was cut.
    pub truncated: bool,
    /// `limits.timeout` passed before its output ended.
    pub timed_out: bool,
}

/// Which of a container's streams a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output (and a TTY container's console).
    Stdout,
    /// Standard error.
    Stderr,
}

/// A line of a container's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Where it was written.
    pub stream: LogStream,
    /// The line without its newline (invalid UTF-8 replaced).
    pub text: String,
}

/// The last lines of a container's log, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Logs {
    /// In the order the container wrote them.
    pub lines: Vec<LogLine>,
    /// `max_bytes` was reached: older lines were dropped (or a line cut).
    pub truncated: bool,
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
    /// Sends `signal` (a name without SIG: "HUP", "USR1", ...) to the container's main process.
    async fn signal(&self, name: &str, signal: &str) -> Result<(), ContainerError>;
    /// Runs `argv` (never through a shell) in the running container, within `limits`.
    async fn exec(
        &self,
        name: &str,
        argv: &[String],
        limits: &ExecLimits,
    ) -> Result<ExecOutput, ContainerError>;
    /// The last `tail` lines of stdout and stderr, in order, at most
    /// `max_bytes` of text in all (newest kept).
    async fn logs(&self, name: &str, tail: u32, max_bytes: usize) -> Result<Logs, ContainerError>;
    /// The names of the containers (running or not) carrying `selector`'s label, sorted.
    async fn list(&self, selector: &LabelSelector) -> Result<Vec<String>, ContainerError>;
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
    async fn signal(&self, _name: &str, _signal: &str) -> Result<(), ContainerError> {
        Err(ContainerError::Runtime(NO_ENGINE.into()))
    }
    async fn exec(
        &self,
        _name: &str,
        _argv: &[String],
        _limits: &ExecLimits,
    ) -> Result<ExecOutput, ContainerError> {
        Err(ContainerError::Runtime(NO_ENGINE.into()))
    }
    async fn logs(&self, _name: &str, _tail: u32, _max: usize) -> Result<Logs, ContainerError> {
        Err(ContainerError::Runtime(NO_ENGINE.into()))
    }
    async fn list(&self, _selector: &LabelSelector) -> Result<Vec<String>, ContainerError> {
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

    #[tokio::test]
    async fn no_engine_answers_every_call_with_its_reason() {
        let argv = ["true".to_owned()];
        let limits = ExecLimits {
            timeout: Duration::from_secs(1),
            max_output_bytes: 1,
        };
        let selector = LabelSelector::parse("app=x").unwrap();
        let errors = [
            NoEngine.signal("a", "HUP").await.unwrap_err(),
            NoEngine.exec("a", &argv, &limits).await.unwrap_err(),
            NoEngine.logs("a", 10, 100).await.unwrap_err(),
            NoEngine.list(&selector).await.unwrap_err(),
        ];
        for error in errors {
            assert_eq!(error, ContainerError::Runtime(NO_ENGINE.into()));
        }
    }

    #[test]
    fn container_info_without_labels_still_reads() {
        let info: ContainerInfo = serde_json::from_str(
            r#"{"name":"a","state":"running","started_at":"","restart_count":0,"health":null}"#,
        )
        .unwrap();
        assert!(info.labels.is_empty());
    }
}
