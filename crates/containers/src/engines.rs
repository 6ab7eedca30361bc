//! More than one container engine behind the one `containers` capability.
//!
//! A name the capability gate passes on is a container on the default
//! engine (`crm-api`) or on a named one (`edge/crm-api`, an engine of
//! `[engines]`). [`Engines`] sends each call to its engine with the bare
//! container name; the gate has already checked the name against the
//! plugin's allow-list, and the breaker counts restarts by the whole name,
//! so per engine and container.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{ContainerError, ContainerInfo, ContainerRuntime};

/// The name under which the default engine is shown.
pub const DEFAULT_ENGINE: &str = "default";

/// The default engine and the named ones.
pub struct Engines {
    default: Arc<dyn ContainerRuntime>,
    named: BTreeMap<String, Arc<dyn ContainerRuntime>>,
}

/// One engine as status pages show it.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineReach {
    /// `default` or the `[engines.NAME]` name.
    pub name: String,
    /// Where its calls go.
    pub address: String,
    /// Its version, or why it did not answer.
    pub version: Result<String, String>,
}

impl Engines {
    /// `default` for bare names, `named` for `NAME/container`.
    pub fn new(
        default: Arc<dyn ContainerRuntime>,
        named: BTreeMap<String, Arc<dyn ContainerRuntime>>,
    ) -> Self {
        Self { default, named }
    }

    /// The engine a name is on, and the container's name there.
    fn route<'a>(&self, name: &'a str) -> Result<(&dyn ContainerRuntime, &'a str), ContainerError> {
        match name.split_once('/') {
            None => Ok((&*self.default, name)),
            Some((engine, container)) => match self.named.get(engine) {
                Some(runtime) => Ok((&**runtime, container)),
                None => Err(ContainerError::Runtime(format!(
                    "no container engine named {engine:?}: the host's [engines] are {:?}",
                    self.named.keys().collect::<Vec<_>>()
                ))),
            },
        }
    }
}

#[async_trait]
impl ContainerRuntime for Engines {
    fn describe(&self) -> String {
        let mut text = self.default.describe();
        for (name, runtime) in &self.named {
            text.push_str(&format!(", {name}: {}", runtime.describe()));
        }
        text
    }

    async fn inspect(&self, name: &str) -> Result<ContainerInfo, ContainerError> {
        let (runtime, container) = self.route(name)?;
        runtime.inspect(container).await.map(|mut info| {
            // The name the plugin and the audit use for it.
            info.name = name.to_owned();
            info
        })
    }

    async fn restart(&self, name: &str, stop_timeout: Duration) -> Result<(), ContainerError> {
        let (runtime, container) = self.route(name)?;
        runtime.restart(container, stop_timeout).await
    }

    async fn version(&self) -> Result<String, ContainerError> {
        self.default.version().await
    }

    /// Every engine's version, each asked within `limit`, all at once.
    async fn reachability(&self, limit: Duration) -> Vec<EngineReach> {
        let engines: Vec<(&str, &Arc<dyn ContainerRuntime>)> =
            std::iter::once((DEFAULT_ENGINE, &self.default))
                .chain(self.named.iter().map(|(name, runtime)| (name.as_str(), runtime)))
                .collect();
        let asks = engines.iter().map(|(name, runtime)| async move {
            let mut reach = runtime.reachability(limit).await.remove(0);
            reach.name = (*name).to_owned();
            reach
        });
        futures_util::future::join_all(asks).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FakeRuntime, NoEngine};

    #[tokio::test]
    async fn each_name_goes_to_its_engine() {
        let (default, edge) = (Arc::new(FakeRuntime::new()), Arc::new(FakeRuntime::new()));
        default.add_running("api", Duration::from_secs(60));
        edge.add_running("api", Duration::from_secs(60));
        let named: BTreeMap<String, Arc<dyn ContainerRuntime>> = [
            ("edge".to_owned(), edge.clone() as Arc<dyn ContainerRuntime>),
            ("gone".to_owned(), Arc::new(NoEngine) as Arc<dyn ContainerRuntime>),
        ]
        .into();
        let engines = Engines::new(default.clone(), named);
        engines.restart("edge/api", Duration::ZERO).await.unwrap();
        assert_eq!(edge.restarts(), ["api"]);
        assert!(default.restarts().is_empty());
        engines.restart("api", Duration::ZERO).await.unwrap();
        assert_eq!(default.restarts(), ["api"]);
        assert_eq!(engines.inspect("edge/api").await.unwrap().name, "edge/api");
        let unknown = engines.inspect("far/api").await.unwrap_err().to_string();
        assert!(
            unknown.contains("\"far\"") && unknown.contains("edge"),
            "{unknown}"
        );
        let reach = engines.reachability(Duration::from_secs(1)).await;
        let names: Vec<_> = reach
            .iter()
            .map(|r| (r.name.as_str(), r.version.is_ok()))
            .collect();
        assert_eq!(names, [("default", true), ("edge", true), ("gone", false)]);
    }
}
