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

use super::{ContainerError, ContainerInfo, ContainerRuntime, ExecLimits, ExecOutput, LabelSelector, Logs};

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

    async fn signal(&self, name: &str, signal: &str) -> Result<(), ContainerError> {
        let (runtime, container) = self.route(name)?;
        runtime.signal(container, signal).await
    }

    async fn exec(
        &self,
        name: &str,
        argv: &[String],
        limits: &ExecLimits,
    ) -> Result<ExecOutput, ContainerError> {
        let (runtime, container) = self.route(name)?;
        runtime.exec(container, argv, limits).await
    }

    async fn logs(&self, name: &str, tail: u32, max_bytes: usize) -> Result<Logs, ContainerError> {
        let (runtime, container) = self.route(name)?;
        runtime.logs(container, tail, max_bytes).await
    }

    /// Every engine is asked at once; names on a named engine come back
    /// qualified (`edge/app-1`), as the gate and the other calls take them.
    /// One engine failing fails the call, naming it: a partial list would
    /// let a plugin act on some of a service's containers believing it
    /// acted on all.
    async fn list(&self, selector: &LabelSelector) -> Result<Vec<String>, ContainerError> {
        let engines = std::iter::once((None, &self.default)).chain(
            self.named
                .iter()
                .map(|(name, runtime)| (Some(name.as_str()), runtime)),
        );
        let asks = engines.map(|(engine, runtime)| async move { (engine, runtime.list(selector).await) });
        let mut names = Vec::new();
        let mut failures = Vec::new();
        for (engine, listed) in futures_util::future::join_all(asks).await {
            match (engine, listed) {
                (None, Ok(listed)) => names.extend(listed),
                (Some(engine), Ok(listed)) => {
                    names.extend(listed.into_iter().map(|name| format!("{engine}/{name}")))
                }
                (engine, Err(error)) => failures.push(format!(
                    "container engine {:?}: {error}",
                    engine.unwrap_or(DEFAULT_ENGINE)
                )),
            }
        }
        if !failures.is_empty() {
            return Err(ContainerError::Runtime(format!(
                "cannot list containers labelled {selector}: {}",
                failures.join("; ")
            )));
        }
        names.sort();
        Ok(names)
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

    fn limits() -> ExecLimits {
        ExecLimits {
            timeout: Duration::from_secs(1),
            max_output_bytes: 100,
        }
    }

    #[tokio::test]
    async fn signals_execs_and_logs_go_to_the_engine_the_name_names() {
        let (default, edge) = (Arc::new(FakeRuntime::new()), Arc::new(FakeRuntime::new()));
        default.add_running("api", Duration::from_secs(60));
        edge.add_running("api", Duration::from_secs(60));
        edge.log(
            "api",
            crate::LogLine {
                stream: crate::LogStream::Stdout,
                text: "on edge".into(),
            },
        );
        let named: BTreeMap<String, Arc<dyn ContainerRuntime>> =
            [("edge".to_owned(), edge.clone() as Arc<dyn ContainerRuntime>)].into();
        let engines = Engines::new(default.clone(), named);
        engines.signal("edge/api", "HUP").await.unwrap();
        engines.signal("api", "USR1").await.unwrap();
        assert_eq!(edge.signals(), [("api".to_owned(), "HUP".to_owned())]);
        assert_eq!(default.signals(), [("api".to_owned(), "USR1".to_owned())]);
        let argv = vec!["true".to_owned()];
        engines.exec("edge/api", &argv, &limits()).await.unwrap();
        assert_eq!(edge.execs(), [("api".to_owned(), argv.clone())]);
        assert!(default.execs().is_empty());
        let logs = engines.logs("edge/api", 10, 100).await.unwrap();
        assert_eq!(logs.lines[0].text, "on edge");
        assert!(engines.logs("api", 10, 100).await.unwrap().lines.is_empty());
        for error in [
            engines.signal("far/api", "HUP").await.unwrap_err(),
            engines
                .exec("far/api", &argv, &limits())
                .await
                .map(|_| ())
                .unwrap_err(),
            engines.logs("far/api", 1, 1).await.map(|_| ()).unwrap_err(),
        ] {
            assert!(error.to_string().contains("\"far\""), "{error}");
        }
        assert_eq!(
            engines.signal("edge/gone", "HUP").await,
            Err(ContainerError::NotFound("gone".into()))
        );
    }

    #[tokio::test]
    async fn list_asks_every_engine_and_qualifies_named_ones() {
        let (default, edge) = (Arc::new(FakeRuntime::new()), Arc::new(FakeRuntime::new()));
        for (runtime, name) in [(&default, "app-2"), (&edge, "app-1"), (&default, "db")] {
            runtime.add_running(name, Duration::from_secs(60));
        }
        default.set_label("app-2", "svc", "app");
        edge.set_label("app-1", "svc", "app");
        default.set_label("db", "svc", "db");
        let selector = LabelSelector::parse("svc=app").unwrap();
        let named: BTreeMap<String, Arc<dyn ContainerRuntime>> =
            [("edge".to_owned(), edge.clone() as Arc<dyn ContainerRuntime>)].into();
        let engines = Engines::new(default.clone(), named);
        assert_eq!(engines.list(&selector).await.unwrap(), ["app-2", "edge/app-1"]);

        // One engine down: no partial answer, and its name in the error.
        let named: BTreeMap<String, Arc<dyn ContainerRuntime>> = [
            ("edge".to_owned(), edge as Arc<dyn ContainerRuntime>),
            ("gone".to_owned(), Arc::new(NoEngine) as Arc<dyn ContainerRuntime>),
        ]
        .into();
        let engines = Engines::new(default, named);
        let error = engines.list(&selector).await.unwrap_err().to_string();
        assert!(
            error.contains("\"gone\"") && error.contains(crate::NO_ENGINE) && error.contains("svc=app"),
            "{error}"
        );
        let engines = Engines::new(Arc::new(NoEngine), BTreeMap::new());
        let error = engines.list(&selector).await.unwrap_err().to_string();
        assert!(error.contains("\"default\""), "{error}");
    }
}
