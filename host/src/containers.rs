//! The container engine behind the `containers` capability.
//!
//! Plugins never reach an engine directly: the capability gate checks each
//! call and only then goes through a [`ContainerRuntime`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub name: String,
    pub state: String,
    /// RFC 3339.
    pub started_at: String,
    pub restart_count: u32,
    pub health: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ContainerError {
    #[error("container {0} not found")]
    NotFound(String),
    /// The engine failed or is unreachable; the message says which engine.
    #[error("{0}")]
    Runtime(String),
}

#[async_trait]
pub trait ContainerRuntime: Send + Sync {
    /// Where this runtime sends calls, for status pages and errors.
    fn describe(&self) -> String;
    async fn inspect(&self, name: &str) -> Result<ContainerInfo, ContainerError>;
    async fn restart(&self, name: &str, stop_timeout: Duration) -> Result<(), ContainerError>;
}

/// The runtime when no engine is configured: every call fails with a reason.
/// Dry-run needs no engine, so the host serves anyway.
pub struct NoEngine;

#[async_trait]
impl ContainerRuntime for NoEngine {
    fn describe(&self) -> String {
        "none".into()
    }
    async fn inspect(&self, _name: &str) -> Result<ContainerInfo, ContainerError> {
        Err(ContainerError::Runtime(
            "no container engine is configured".into(),
        ))
    }
    async fn restart(&self, _name: &str, _stop: Duration) -> Result<(), ContainerError> {
        Err(ContainerError::Runtime(
            "no container engine is configured".into(),
        ))
    }
}

/// An in-process engine for tests and `plugin test`: containers live in a
/// map, a restart bumps the restart count and the start time.
#[derive(Default)]
pub struct FakeRuntime {
    containers: Mutex<HashMap<String, ContainerInfo>>,
    restarts: Mutex<Vec<String>>,
    restart_delay: Option<Duration>,
}

impl FakeRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    /// Restarts take this long (to test deadlines and concurrency).
    pub fn with_restart_delay(mut self, delay: Duration) -> Self {
        self.restart_delay = Some(delay);
        self
    }

    /// Adds a running container started `uptime` ago.
    pub fn add_running(&self, name: &str, uptime: Duration) {
        let started = chrono::Utc::now() - chrono::Duration::from_std(uptime).unwrap_or_default();
        self.add(ContainerInfo {
            name: name.into(),
            state: "running".into(),
            started_at: started.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            restart_count: 0,
            health: None,
        });
    }

    pub fn add(&self, info: ContainerInfo) {
        self.lock().insert(info.name.clone(), info);
    }

    /// Names of the containers restarted so far, in order.
    pub fn restarts(&self) -> Vec<String> {
        self.restarts.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ContainerInfo>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ContainerRuntime for FakeRuntime {
    fn describe(&self) -> String {
        "in-process fake".into()
    }

    async fn inspect(&self, name: &str) -> Result<ContainerInfo, ContainerError> {
        self.lock()
            .get(name)
            .cloned()
            .ok_or_else(|| ContainerError::NotFound(name.into()))
    }

    async fn restart(&self, name: &str, _stop: Duration) -> Result<(), ContainerError> {
        if let Some(delay) = self.restart_delay {
            tokio::time::sleep(delay).await;
        }
        {
            let mut containers = self.lock();
            let info = containers
                .get_mut(name)
                .ok_or_else(|| ContainerError::NotFound(name.into()))?;
            info.restart_count += 1;
            info.state = "running".into();
            info.started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        }
        self.restarts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.into());
        Ok(())
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

    #[tokio::test]
    async fn fake_restart_bumps_count_and_start_time() {
        let fake = FakeRuntime::new();
        fake.add_running("crm-api", Duration::from_secs(3600));
        let before = fake.inspect("crm-api").await.unwrap();
        assert!(uptime_seconds(&before.started_at).unwrap() >= 3599);
        fake.restart("crm-api", Duration::ZERO).await.unwrap();
        let after = fake.inspect("crm-api").await.unwrap();
        assert_eq!(after.restart_count, 1);
        assert!(uptime_seconds(&after.started_at).unwrap() < 5);
        assert_eq!(fake.restarts(), ["crm-api"]);
        assert_eq!(
            fake.restart("db", Duration::ZERO).await,
            Err(ContainerError::NotFound("db".into()))
        );
    }

    #[test]
    fn uptime_parses_offsets_and_rejects_garbage() {
        assert!(uptime_seconds("2020-01-01T00:00:00+02:00").unwrap() > 100_000);
        assert!(uptime_seconds("2020-01-01T00:00:00.123456789Z").is_some());
        assert_eq!(uptime_seconds("0001-01-01T00:00:00Z").map(|_| ()), Some(()));
        assert_eq!(uptime_seconds("yesterday"), None);
    }
}
