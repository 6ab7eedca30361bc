//! The single chokepoint between a plugin and the world.
//!
//! Every capability call a plugin makes arrives here, is checked against the
//! plugin's manifest, and is recorded. Nothing else in the host hands a
//! plugin access to anything.

use std::sync::Arc;
use std::time::Duration;

pub use autoheal_core::invocation::{CallOutcome, Capability, CapabilityCall};
pub use autoheal_core::mode::ExecutionMode;

use super::breaker::{Admission, Joining, Refused, RestartBreaker};
use autoheal_containers::{ContainerError, ContainerInfo, ContainerRuntime};

/// Calls one invocation may make; beyond this every call is denied, so a
/// looping plugin cannot flood the engine or the audit trail.
pub const MAX_CALLS_PER_INVOCATION: usize = 64;

pub use autoheal_manifest::{MAX_CONTAINER_NAME, is_container_name};
use autoheal_manifest::{Unresolved, is_container_target, resolve_container};

/// An error returned to the plugin, in the WIT contract's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum GateError {
    /// The allow-list, the call budget or the circuit breaker refused the call.
    Denied(String),
    /// The engine has no such container.
    NotFound(String),
    /// The engine failed or could not be reached.
    Runtime(String),
}

/// What the host lends plugins, shared by all invocations.
#[derive(Clone)]
pub struct HostServices {
    /// The container engine the capability calls go to.
    pub containers: Arc<dyn ContainerRuntime>,
    /// The restart circuit breaker.
    pub breaker: Arc<RestartBreaker>,
    /// Where a real restart is recorded before it is sent.
    pub intents: Arc<dyn IntentLog>,
}

/// A restart intent could not be recorded; the restart is not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the restart was not sent: its intent could not be recorded ({0})")]
pub struct IntentError(pub String);

/// Where real restarts are recorded, durably, before they are sent: no
/// side effect without a record, even if the host dies during it.
#[async_trait::async_trait]
pub trait IntentLog: Send + Sync {
    /// Records that `plugin` is about to restart `container`; the record's id.
    async fn restart_intent(&self, plugin: &str, container: &str) -> Result<Option<u64>, IntentError>;
}

/// No record (tests, and `plugin test`, which never restarts for real).
pub struct NoIntentLog;

#[async_trait::async_trait]
impl IntentLog for NoIntentLog {
    async fn restart_intent(&self, _plugin: &str, _container: &str) -> Result<Option<u64>, IntentError> {
        Ok(None)
    }
}

/// The one permission check between a plugin and the host: each capability call is checked against the manifest and recorded.
pub struct CapabilityGate {
    plugin: String,
    allowed_containers: Arc<[String]>,
    mode: ExecutionMode,
    services: HostServices,
    stop_timeout: Duration,
    /// When a restart joins another alert's restart of the same container.
    joining: Joining,
    calls: Vec<CapabilityCall>,
    invalid_targets: usize,
    /// Calls refused past the budget: not in `calls` (which stays bounded),
    /// only counted, so that a report can say they happened.
    over_budget: usize,
}

impl CapabilityGate {
    /// A gate for one invocation of the plugin that `manifest` describes.
    pub fn new(
        plugin: String,
        allowed_containers: Arc<[String]>,
        mode: ExecutionMode,
        services: HostServices,
        stop_timeout: Duration,
        joining: Joining,
    ) -> Self {
        Self {
            plugin,
            allowed_containers,
            mode,
            services,
            stop_timeout,
            joining,
            calls: Vec::new(),
            invalid_targets: 0,
            over_budget: 0,
        }
    }

    /// The calls made, in order, with their outcomes.
    pub fn into_calls(self) -> Vec<CapabilityCall> {
        self.calls
    }

    /// `containers.inspect`, if the manifest allows `name`.
    pub async fn inspect(&mut self, name: String) -> Result<ContainerInfo, GateError> {
        const CAPABILITY: Capability = Capability::ContainersInspect;
        let name = self.check(CAPABILITY, &name)?;
        let result = self.services.containers.inspect(&name).await;
        self.record_engine_result(CAPABILITY, name, result.as_ref().map(|_| ()), CallOutcome::Ok);
        result.map_err(GateError::from)
    }

    /// `containers.restart`, if the manifest allows `name` and its breaker is closed; only recorded in dry-run.
    pub async fn restart(&mut self, name: String) -> Result<(), GateError> {
        const CAPABILITY: Capability = Capability::ContainersRestart;
        let name = self.check(CAPABILITY, &name)?;
        if self.mode == ExecutionMode::DryRun {
            self.record(CAPABILITY, name, CallOutcome::Recorded, None);
            return Ok(());
        }
        let admitted_at = match self.services.breaker.admit_or_join(&name, &self.joining).await {
            Ok(Admission::Restart { at }) => at,
            // One fault, one restart: another action restarted this
            // container moments ago (or is restarting it), for another alert
            // of the same outage. That restart is this one's too.
            Ok(Admission::Join { age_sec }) => {
                let detail = format!(
                    "{name} was restarted {age_sec:.0} s ago, within this plugin's target_cooldown of {}: \
                     this restart joins it (not sent, not counted by the breaker)",
                    humantime::format_duration(self.joining.within)
                );
                self.record(CAPABILITY, name, CallOutcome::Joined, Some(detail));
                return Ok(());
            }
            Err(Refused::Open(open)) => {
                let refusal = open.to_string();
                self.record(CAPABILITY, name, CallOutcome::CircuitOpen, Some(refusal.clone()));
                return Err(GateError::Denied(refusal));
            }
            // Not a refusal of the plugin's: the restart cannot be counted.
            Err(unavailable @ Refused::Unavailable(_)) => {
                let reason = unavailable.to_string();
                self.record(CAPABILITY, name, CallOutcome::Failed, Some(reason.clone()));
                return Err(GateError::Runtime(reason));
            }
        };
        // The intent is on disk before the engine hears of the restart.
        let intent = match self.services.intents.restart_intent(&self.plugin, &name).await {
            Ok(intent) => intent,
            Err(e) => {
                let reason = e.to_string();
                self.record(CAPABILITY, name, CallOutcome::Failed, Some(reason.clone()));
                return Err(GateError::Runtime(reason));
            }
        };
        let result = self.services.containers.restart(&name, self.stop_timeout).await;
        if result.is_err() {
            self.services.breaker.restart_failed(&name, admitted_at);
        }
        self.record_engine_result(CAPABILITY, name, result.as_ref().map(|_| ()), CallOutcome::Ok);
        if let Some(call) = self.calls.last_mut() {
            call.intent = intent;
        }
        result.map_err(GateError::from)
    }

    /// Calls that named something that is not a container name.
    pub fn invalid_targets(&self) -> usize {
        self.invalid_targets
    }

    /// Calls made after the budget of [`MAX_CALLS_PER_INVOCATION`] was used
    /// up: refused, and left out of the calls.
    pub fn over_budget(&self) -> usize {
        self.over_budget
    }

    /// The one permission check: the call budget, a name that can be a
    /// container's, then the allow-list. Returns the allow-list's entry for
    /// it (`edge/crm-api` for `crm-api` allowed on engine `edge` only): the
    /// name the engine, the breaker and the audit see.
    fn check(&mut self, capability: Capability, target: &str) -> Result<String, GateError> {
        if !is_container_target(target) {
            // Recorded by its length only: the bytes are the plugin's to choose.
            self.invalid_targets += 1;
            let reason = format!(
                "not a container name ({} bytes): names are 1 to {MAX_CONTAINER_NAME} characters of \
                 [a-zA-Z0-9_.-], starting with a letter or digit, optionally after `ENGINE/`",
                target.len()
            );
            if self.calls.len() < MAX_CALLS_PER_INVOCATION {
                self.record(
                    capability,
                    format!("<invalid: {} bytes>", target.len()),
                    CallOutcome::Denied,
                    Some(reason.clone()),
                );
            } else {
                self.over_budget += 1;
            }
            return Err(GateError::Denied(reason));
        }
        let reason = if self.calls.len() >= MAX_CALLS_PER_INVOCATION {
            format!("call budget of {MAX_CALLS_PER_INVOCATION} capability calls per invocation is used up")
        } else {
            match resolve_container(&self.allowed_containers, target) {
                Ok(entry) => return Ok(entry.to_owned()),
                Err(Unresolved::NotAllowed) => format!(
                    "plugin {} may not touch container {target:?}: its manifest allows {:?}",
                    self.plugin, self.allowed_containers
                ),
                Err(ambiguous) => format!("container {target:?} is {ambiguous}"),
            }
        };
        // Past the budget, calls are refused without being recorded (the
        // list stays bounded whatever a plugin does); only counted.
        if self.calls.len() < MAX_CALLS_PER_INVOCATION {
            self.record(
                capability,
                target.to_owned(),
                CallOutcome::Denied,
                Some(reason.clone()),
            );
        } else {
            self.over_budget += 1;
        }
        Err(GateError::Denied(reason))
    }

    fn record_engine_result(
        &mut self,
        capability: Capability,
        target: String,
        result: Result<(), &ContainerError>,
        ok: CallOutcome,
    ) {
        match result {
            Ok(()) => self.record(capability, target, ok, None),
            Err(e) => self.record(capability, target, CallOutcome::Failed, Some(e.to_string())),
        }
    }

    fn record(
        &mut self,
        capability: Capability,
        target: String,
        outcome: CallOutcome,
        detail: Option<String>,
    ) {
        self.calls.push(CapabilityCall {
            capability,
            intent: None,
            target,
            outcome,
            detail,
        });
    }
}

impl From<ContainerError> for GateError {
    fn from(e: ContainerError) -> Self {
        match e {
            ContainerError::NotFound(_) => GateError::NotFound(e.to_string()),
            ContainerError::Runtime(message) => GateError::Runtime(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_are_what_docker_accepts() {
        for ok in ["crm-api", "db", "a", "web_1.blue", "0abc"] {
            assert!(is_container_name(ok), "{ok}");
        }
        let long = "a".repeat(MAX_CONTAINER_NAME + 1);
        for bad in [
            "", "/crm-api", "-x", ".x", "crm api", "crm-api ", "a/../b", "a\0", "a%2Fb", "é", &long,
        ] {
            assert!(!is_container_name(bad), "{bad:?}");
        }
    }
    use autoheal_containers::FakeRuntime;

    fn services(fake: Arc<FakeRuntime>) -> HostServices {
        HostServices {
            containers: fake,
            breaker: Arc::new(RestartBreaker::new(2, Duration::from_secs(3600))),
            intents: Arc::new(NoIntentLog),
        }
    }

    fn gate(mode: ExecutionMode, fake: Arc<FakeRuntime>) -> CapabilityGate {
        CapabilityGate::new(
            "p".into(),
            vec!["crm-api".to_owned()].into(),
            mode,
            services(fake),
            Duration::ZERO,
            Joining::default(),
        )
    }

    #[tokio::test]
    async fn outside_the_allow_list_is_denied_and_never_reaches_the_engine() {
        let fake = Arc::new(FakeRuntime::new());
        fake.add_running("db", Duration::from_secs(100));
        let mut gate = gate(ExecutionMode::Real, fake.clone());
        let err = gate.restart("db".into()).await.unwrap_err();
        assert!(
            matches!(err, GateError::Denied(ref m) if m.contains("\"db\"")),
            "{err:?}"
        );
        assert!(fake.restarts().is_empty());
        assert_eq!(gate.calls[0].outcome, CallOutcome::Denied);
    }

    #[tokio::test]
    async fn dry_run_records_restart_but_reads_for_real() {
        let fake = Arc::new(FakeRuntime::new());
        fake.add_running("crm-api", Duration::from_secs(100));
        let mut gate = gate(ExecutionMode::DryRun, fake.clone());
        assert_eq!(gate.inspect("crm-api".into()).await.unwrap().name, "crm-api");
        gate.restart("crm-api".into()).await.unwrap();
        assert!(fake.restarts().is_empty());
        let outcomes: Vec<_> = gate.calls.iter().map(|c| (c.capability, c.outcome)).collect();
        assert_eq!(
            outcomes,
            [
                (Capability::ContainersInspect, CallOutcome::Ok),
                (Capability::ContainersRestart, CallOutcome::Recorded)
            ]
        );
    }

    #[tokio::test]
    async fn real_mode_restarts_and_maps_engine_errors() {
        let fake = Arc::new(FakeRuntime::new());
        fake.add_running("crm-api", Duration::from_secs(100));
        let mut gate = gate(ExecutionMode::Real, fake.clone());
        gate.restart("crm-api".into()).await.unwrap();
        assert_eq!(fake.restarts(), ["crm-api"]);

        let mut gate = CapabilityGate::new(
            "p".into(),
            vec!["gone".to_owned()].into(),
            ExecutionMode::Real,
            services(fake),
            Duration::ZERO,
            Joining::default(),
        );
        let err = gate.inspect("gone".into()).await.unwrap_err();
        assert_eq!(err, GateError::NotFound("container gone not found".into()));
        assert_eq!(gate.calls[0].outcome, CallOutcome::Failed);
    }

    #[tokio::test]
    async fn the_breaker_refuses_real_restarts_beyond_its_limit_but_not_dry_runs() {
        let fake = Arc::new(FakeRuntime::new());
        fake.add_running("crm-api", Duration::from_secs(100));
        let mut gate = gate(ExecutionMode::Real, fake.clone());
        gate.restart("crm-api".into()).await.unwrap();
        gate.restart("crm-api".into()).await.unwrap();
        let err = gate.restart("crm-api".into()).await.unwrap_err();
        assert!(
            matches!(err, GateError::Denied(ref m) if m.starts_with("circuit_open")),
            "{err:?}"
        );
        assert_eq!(fake.restarts().len(), 2);
        assert_eq!(gate.calls[2].outcome, CallOutcome::CircuitOpen);

        let mut dry = CapabilityGate::new(
            "p".into(),
            vec!["crm-api".to_owned()].into(),
            ExecutionMode::DryRun,
            gate.services.clone(),
            Duration::ZERO,
            Joining::default(),
        );
        dry.restart("crm-api".into()).await.unwrap();
        assert_eq!(dry.calls[0].outcome, CallOutcome::Recorded);
    }

    #[tokio::test]
    async fn a_second_restart_within_the_target_cooldown_joins_the_first() {
        let fake = Arc::new(FakeRuntime::new());
        fake.add_running("crm-api", Duration::from_secs(3600));
        let services = services(fake.clone());
        let gate = |plugin: &str, alert: &str| {
            CapabilityGate::new(
                plugin.into(),
                vec!["crm-api".to_owned()].into(),
                ExecutionMode::Real,
                services.clone(),
                Duration::ZERO,
                Joining {
                    within: Duration::from_secs(60),
                    alert: alert.into(),
                },
            )
        };
        let (mut first, mut second) = (gate("probe-fix", "probe"), gate("scrape-fix", "scrape"));
        first.restart("crm-api".into()).await.unwrap();
        second.restart("crm-api".into()).await.unwrap();
        assert_eq!(fake.restarts(), ["crm-api"], "one fault, one restart");
        assert_eq!(first.calls[0].outcome, CallOutcome::Ok);
        assert_eq!(second.calls[0].outcome, CallOutcome::Joined);
        let detail = second.calls[0].detail.as_deref().unwrap();
        assert!(
            detail.contains("within this plugin's target_cooldown of 1m"),
            "{detail}"
        );
        // The join spent none of the breaker's two places.
        let mut third = CapabilityGate::new(
            "p".into(),
            vec!["crm-api".to_owned()].into(),
            ExecutionMode::Real,
            services.clone(),
            Duration::ZERO,
            Joining::default(),
        );
        third.restart("crm-api".into()).await.unwrap();
        assert_eq!(fake.restarts().len(), 2);
    }

    #[tokio::test]
    async fn call_budget_is_enforced() {
        let fake = Arc::new(FakeRuntime::new());
        fake.add_running("crm-api", Duration::from_secs(100));
        let mut gate = gate(ExecutionMode::DryRun, fake);
        for _ in 0..MAX_CALLS_PER_INVOCATION {
            gate.restart("crm-api".into()).await.unwrap();
        }
        assert_eq!(gate.over_budget(), 0);
        for _ in 0..3 {
            assert!(matches!(
                gate.restart("crm-api".into()).await,
                Err(GateError::Denied(_))
            ));
        }
        // An invalid name past the budget is refused and counted the same way.
        assert!(gate.inspect("not a name!".into()).await.is_err());
        assert_eq!(gate.calls.len(), MAX_CALLS_PER_INVOCATION);
        assert_eq!(gate.over_budget(), 4, "every call past the budget is counted");
    }

    #[tokio::test]
    async fn a_container_on_a_named_engine_is_called_there_and_broken_per_engine() {
        let (default, edge) = (Arc::new(FakeRuntime::new()), Arc::new(FakeRuntime::new()));
        default.add_running("api", Duration::from_secs(100));
        edge.add_running("api", Duration::from_secs(100));
        edge.add_running("billing", Duration::from_secs(100));
        let named = [("edge".to_owned(), edge.clone() as Arc<dyn ContainerRuntime>)].into();
        let engines: Arc<dyn ContainerRuntime> =
            Arc::new(autoheal_containers::Engines::new(default.clone(), named));
        let allowed: Arc<[String]> =
            vec!["api".to_owned(), "edge/api".to_owned(), "edge/billing".to_owned()].into();
        let mut services = services(default.clone());
        services.containers = engines;
        let mut gate = CapabilityGate::new(
            "p".into(),
            allowed,
            ExecutionMode::Real,
            services,
            Duration::ZERO,
            Joining::default(),
        );
        // A bare name on one engine only goes to that engine, under its qualified name.
        gate.restart("billing".into()).await.unwrap();
        assert_eq!(edge.restarts(), ["billing"]);
        assert_eq!(gate.calls[0].target, "edge/billing");
        // `api` is allowed on both: the bare name is the default engine's entry.
        gate.restart("api".into()).await.unwrap();
        gate.restart("api".into()).await.unwrap();
        assert_eq!(default.restarts(), ["api", "api"]);
        // The default's `api` is at the breaker's limit of 2; edge's is not.
        assert!(gate.restart("api".into()).await.is_err());
        gate.restart("edge/api".into()).await.unwrap();
        assert_eq!(edge.restarts(), ["billing", "api"]);
        let outsider = gate.restart("far/api".into()).await.unwrap_err();
        assert!(matches!(outsider, GateError::Denied(_)), "{outsider:?}");
    }
}
