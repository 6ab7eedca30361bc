//! An in-process container engine for tests and `plugin test`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{ContainerError, ContainerInfo, ContainerRuntime};

/// An in-process engine for tests and `plugin test`: containers live in a
/// map, a restart bumps the restart count and the start time.
#[derive(Default)]
pub struct FakeRuntime {
    containers: Mutex<HashMap<String, ContainerInfo>>,
    restarts: Mutex<Vec<String>>,
    restart_delay: Option<Duration>,
}

impl FakeRuntime {
    /// An engine with no containers.
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

    /// Adds (or replaces) a container.
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

    async fn version(&self) -> Result<String, ContainerError> {
        Ok("fake".into())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uptime_seconds;

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
}
