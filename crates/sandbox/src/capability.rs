//! The single chokepoint between a plugin and the world.
//!
//! Every capability call a plugin makes arrives here, is checked against the
//! plugin's manifest, and is recorded. Nothing else in the host hands a
//! plugin access to anything. This module is what every capability shares:
//! the call budget, the record of each call (capability, target, outcome,
//! detail, duration), and for effects the dry-run rule, the circuit breaker
//! and the intent written before the effect is sent. What each call checks
//! and does is its capability's module (`capabilities/`).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use autoheal_core::invocation::{CallOutcome, Capability, CapabilityCall};
pub use autoheal_core::mode::ExecutionMode;

use super::breaker::{Admission, Joining, Refused, RestartBreaker};
use autoheal_containers::{ContainerError, ContainerRuntime};
use autoheal_manifest::{ContainerGrant, HttpGrant, PrometheusGrant, StateGrant};

use crate::capabilities::Scrubber;
pub use crate::capabilities::{
    HttpCall, HttpServices, HttpTransport, Inbound, MIN_SECRET_BYTES, NetError, NetTransport, Outbound,
    Secrets,
};

pub use crate::capabilities::prometheus::{
    MAX_PROMQL_BYTES, NoPrometheus, PromAnswer, PromError, PromQuery, PromSeries, PrometheusSource,
    QueryError, parse_answer,
};
pub use crate::capabilities::state::{
    MemoryStateStore, StateEntry, StateMap, StateStore, StoreError, now as state_now,
};

/// Calls one invocation may make; beyond this every call is denied, so a
/// looping plugin cannot flood the engine or the audit trail.
pub const MAX_CALLS_PER_INVOCATION: usize = 64;

/// Longest `detail` kept in a call's record (the plugin may get more: the
/// record is for people and the trail).
pub const MAX_DETAIL_BYTES: usize = 512;

pub use autoheal_manifest::{MAX_CONTAINER_NAME, is_container_name};

/// An error returned to the plugin, in the WIT contract's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum GateError {
    /// The allow-list, the call budget or the circuit breaker refused the call.
    Denied(String),
    /// The engine has no such container.
    NotFound(String),
    /// The engine (or the server asked) failed or could not be reached.
    Runtime(String),
    /// The call did not complete within its deadline (HTTP requests).
    Timeout(String),
}

/// What the host lends plugins, shared by all invocations.
#[derive(Clone)]
pub struct HostServices {
    /// The container engine the capability calls go to.
    pub containers: Arc<dyn ContainerRuntime>,
    /// The circuit breakers of effects.
    pub breakers: Breakers,
    /// Where a real effect is recorded before it is sent.
    pub intents: Arc<dyn IntentLog>,
    /// The network and the secrets of `http.request`.
    pub http: HttpServices,
    /// The host's Prometheus (`prometheus_url`), which queries go to.
    pub prometheus: Arc<dyn PrometheusSource>,
    /// Where plugins' state is kept.
    pub state: Arc<dyn StateStore>,
}

impl HostServices {
    /// Services with no network, no Prometheus and a state kept in memory:
    /// for benches, tests and trials that set the rest themselves.
    pub fn offline(
        containers: Arc<dyn ContainerRuntime>,
        breakers: Breakers,
        intents: Arc<dyn IntentLog>,
    ) -> Self {
        Self {
            containers,
            breakers,
            intents,
            http: HttpServices::default(),
            prometheus: Arc::new(NoPrometheus),
            state: Arc::new(MemoryStateStore::default()),
        }
    }
}

/// One circuit breaker per effect, each counting per container.
#[derive(Clone)]
pub struct Breakers {
    /// Restarts (shared by the replicas of a cluster).
    pub restart: Arc<RestartBreaker>,
    /// Signals.
    pub signal: Arc<RestartBreaker>,
    /// Commands run in containers.
    pub exec: Arc<RestartBreaker>,
    /// HTTP requests that are effects, counted per origin.
    pub http: Arc<RestartBreaker>,
}

impl Breakers {
    /// `restart` for restarts; signals and commands each at most `max_signals`
    /// and `max_execs` per container in the restart breaker's window.
    pub fn new(restart: Arc<RestartBreaker>, max_signals: u32, max_execs: u32, window: Duration) -> Self {
        Self {
            restart,
            signal: Arc::new(RestartBreaker::for_effect(
                Capability::ContainersSignal,
                max_signals,
                window,
            )),
            exec: Arc::new(RestartBreaker::for_effect(
                Capability::ContainersExec,
                max_execs,
                window,
            )),
            // Until `with_http` says otherwise: as many as commands.
            http: Arc::new(RestartBreaker::for_effect(
                Capability::HttpRequest,
                max_execs,
                window,
            )),
        }
    }

    /// The breaker of HTTP effects at `max` per origin per `window`.
    pub fn with_http(mut self, max: u32, window: Duration) -> Self {
        self.http = Arc::new(RestartBreaker::for_effect(Capability::HttpRequest, max, window));
        self
    }

    /// Breakers with these limits per container per hour (tests, tools).
    pub fn with_limit(max: u32) -> Self {
        let hour = Duration::from_secs(3600);
        Self::new(Arc::new(RestartBreaker::new(max, hour)), max, max, hour)
    }

    /// The breaker of `capability`, if it is an effect.
    pub fn of(&self, capability: Capability) -> Option<&Arc<RestartBreaker>> {
        match capability {
            Capability::ContainersRestart => Some(&self.restart),
            Capability::ContainersSignal => Some(&self.signal),
            Capability::ContainersExec => Some(&self.exec),
            Capability::HttpRequest => Some(&self.http),
            _ => None,
        }
    }

    /// Every breaker.
    pub fn all(&self) -> [&Arc<RestartBreaker>; 4] {
        [&self.restart, &self.signal, &self.exec, &self.http]
    }
}

/// An intent could not be recorded; the effect is not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the call was not sent: its intent could not be recorded ({0})")]
pub struct IntentError(pub String);

/// Where real effects are recorded, durably, before they are sent: no side
/// effect without a record, even if the host dies during it.
#[async_trait::async_trait]
pub trait IntentLog: Send + Sync {
    /// Records that `plugin` is about to make the effect `capability` on
    /// `target`, carrying `detail` (the signal, the command); the record's id.
    async fn intent(
        &self,
        plugin: &str,
        capability: Capability,
        target: &str,
        detail: &str,
    ) -> Result<Option<u64>, IntentError>;
}

/// No record (tests, and `plugin test`, which never acts for real).
pub struct NoIntentLog;

#[async_trait::async_trait]
impl IntentLog for NoIntentLog {
    async fn intent(
        &self,
        _plugin: &str,
        _capability: Capability,
        _target: &str,
        _detail: &str,
    ) -> Result<Option<u64>, IntentError> {
        Ok(None)
    }
}

/// What became of an effect the gate let through.
#[derive(Debug)]
pub(crate) enum Effect<T> {
    /// Sent; what the engine answered.
    Sent(T),
    /// Dry-run: recorded, not sent.
    Recorded,
    /// Joined another alert's restart of the container (restarts only).
    Joined,
}

/// The one permission check between a plugin and the host: each capability call is checked against the manifest and recorded.
pub struct CapabilityGate {
    pub(crate) plugin: String,
    pub(crate) grant: Arc<ContainerGrant>,
    /// `[capabilities.http]`, if the manifest has it.
    pub(crate) http: Option<Arc<HttpGrant>>,
    /// Every spelling of the host's secrets, scrubbed out of every record.
    scrubber: Scrubber,
    /// `[capabilities.prometheus]`, if the manifest has it.
    pub(crate) prometheus_grant: Option<PrometheusGrant>,
    /// `[capabilities.state]`, if the manifest has it.
    pub(crate) state_grant: Option<StateGrant>,
    pub(crate) mode: ExecutionMode,
    pub(crate) services: HostServices,
    pub(crate) stop_timeout: Duration,
    /// When a restart joins another alert's restart of the same container.
    joining: Joining,
    calls: Vec<CapabilityCall>,
    /// When the call being checked arrived: its record's duration.
    call_started: Instant,
    pub(crate) invalid_targets: usize,
    /// Calls refused past the budget: not in `calls` (which stays bounded),
    /// only counted, so that a report can say they happened.
    over_budget: usize,
}

impl CapabilityGate {
    /// A gate for one invocation of the plugin `plugin`, which `grant` allows.
    pub fn new(
        plugin: String,
        grant: Arc<ContainerGrant>,
        mode: ExecutionMode,
        services: HostServices,
        stop_timeout: Duration,
        joining: Joining,
    ) -> Self {
        let scrubber = services.http.secrets.scrubber();
        Self {
            plugin,
            grant,
            http: None,
            scrubber,
            prometheus_grant: None,
            state_grant: None,
            mode,
            services,
            stop_timeout,
            joining,
            calls: Vec::new(),
            call_started: Instant::now(),
            invalid_targets: 0,
            over_budget: 0,
        }
    }

    /// A gate for the plugin `p`, allowed no container: the tests of the
    /// capabilities that name none (HTTP, Prometheus, state).
    #[cfg(test)]
    pub(crate) fn without_containers(mode: ExecutionMode, services: HostServices) -> Self {
        Self::new(
            "p".into(),
            Arc::new(ContainerGrant::default()),
            mode,
            services,
            Duration::ZERO,
            Joining::default(),
        )
    }

    /// What the manifest allows of `http.request`.
    pub fn with_http(mut self, grant: Option<Arc<HttpGrant>>) -> Self {
        self.http = grant;
        self
    }

    /// `text` with the host's secrets scrubbed out (the plugin's log lines,
    /// its answer, its errors).
    pub fn scrub(&self, text: &str) -> String {
        self.scrubber.text(text)
    }

    /// The gate with the manifest's `prometheus` and `state` sections (none
    /// by default: those calls are denied).
    pub fn with_grants(mut self, prometheus: Option<PrometheusGrant>, state: Option<StateGrant>) -> Self {
        self.prometheus_grant = prometheus;
        self.state_grant = state;
        self
    }

    /// The calls made, in order, with their outcomes.
    pub fn into_calls(self) -> Vec<CapabilityCall> {
        self.calls
    }

    /// The calls made so far.
    pub fn calls(&self) -> &[CapabilityCall] {
        &self.calls
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

    /// The start of every call: its clock starts, and past the budget it is
    /// refused (counted, not recorded: the list stays bounded whatever a
    /// plugin does).
    pub(crate) fn begin(&mut self) -> Result<(), GateError> {
        self.call_started = Instant::now();
        if self.calls.len() < MAX_CALLS_PER_INVOCATION {
            return Ok(());
        }
        self.over_budget += 1;
        Err(GateError::Denied(format!(
            "call budget of {MAX_CALLS_PER_INVOCATION} capability calls per invocation is used up"
        )))
    }

    /// Records a refusal and answers it to the plugin.
    pub(crate) fn deny(&mut self, capability: Capability, target: String, reason: String) -> GateError {
        self.record(capability, target, CallOutcome::Denied, Some(reason.clone()));
        GateError::Denied(reason)
    }

    /// The effect `capability` on `target`: in dry-run recorded and not
    /// sent; else counted by its breaker (a restart may join another
    /// alert's), written as an intent, then sent by `send`. Every outcome
    /// is recorded with `detail` (what the effect carries); `done` says what
    /// to add to it once sent (an exit code).
    pub(crate) async fn effect<T, E, F>(
        &mut self,
        capability: Capability,
        target: String,
        detail: String,
        send: F,
        done: impl FnOnce(&T) -> Option<String>,
    ) -> Result<Effect<T>, GateError>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
        GateError: From<E>,
    {
        let said = |extra: Option<String>| -> Option<String> {
            match (detail.is_empty(), extra) {
                (true, extra) => extra,
                (false, None) => Some(detail.clone()),
                (false, Some(extra)) => Some(format!("{detail}: {extra}")),
            }
        };
        if self.mode == ExecutionMode::DryRun {
            self.record(capability, target, CallOutcome::Recorded, said(None));
            return Ok(Effect::Recorded);
        }
        let breaker = self
            .services
            .breakers
            .of(capability)
            .expect("effects have a breaker")
            .clone();
        // One fault, one restart: a restart joins another alert's restart
        // of the same container within the target cooldown.
        let joining = if capability == Capability::ContainersRestart {
            self.joining.clone()
        } else {
            Joining::default()
        };
        let admitted_at = match breaker.admit_or_join(&target, &joining).await {
            Ok(Admission::Restart { at }) => at,
            Ok(Admission::Join { age_sec }) => {
                let why = format!(
                    "{target} was restarted {age_sec:.0} s ago, within this plugin's target_cooldown of {}: \
                     this restart joins it (not sent, not counted by the breaker)",
                    humantime::format_duration(self.joining.within)
                );
                self.record(capability, target, CallOutcome::Joined, Some(why));
                return Ok(Effect::Joined);
            }
            Err(Refused::Open(open)) => {
                let refusal = open.to_string();
                self.record(
                    capability,
                    target,
                    CallOutcome::CircuitOpen,
                    Some(refusal.clone()),
                );
                return Err(GateError::Denied(refusal));
            }
            // Not a refusal of the plugin's: the effect cannot be counted.
            Err(unavailable @ Refused::Unavailable(_)) => {
                let reason = unavailable.to_string();
                self.record(capability, target, CallOutcome::Failed, Some(reason.clone()));
                return Err(GateError::Runtime(reason));
            }
        };
        // The intent is on disk before the engine hears of the effect.
        let intent = match self
            .services
            .intents
            .intent(&self.plugin, capability, &target, &detail)
            .await
        {
            Ok(intent) => intent,
            Err(e) => {
                let reason = e.to_string();
                self.record(capability, target, CallOutcome::Failed, Some(reason.clone()));
                return Err(GateError::Runtime(reason));
            }
        };
        let result = send.await;
        match &result {
            Ok(answer) => {
                let extra = done(answer);
                self.record(capability, target, CallOutcome::Ok, said(extra));
            }
            Err(e) => {
                breaker.restart_failed(&target, admitted_at);
                self.record(capability, target, CallOutcome::Failed, said(Some(e.to_string())));
            }
        }
        if let Some(call) = self.calls.last_mut() {
            call.intent = intent;
        }
        result.map(Effect::Sent).map_err(GateError::from)
    }

    /// Records a read's result: `ok` carries what to say of the answer.
    pub(crate) fn record_read<T>(
        &mut self,
        capability: Capability,
        target: String,
        result: &Result<T, ContainerError>,
        said: impl FnOnce(&T) -> Option<String>,
    ) {
        match result {
            Ok(answer) => {
                let detail = said(answer);
                self.record(capability, target, CallOutcome::Ok, detail)
            }
            Err(e) => self.record(capability, target, CallOutcome::Failed, Some(e.to_string())),
        }
    }

    pub(crate) fn record(
        &mut self,
        capability: Capability,
        target: String,
        outcome: CallOutcome,
        detail: Option<String>,
    ) {
        self.calls.push(CapabilityCall {
            capability,
            detail: detail.map(|d| cut(self.scrubber.text(&d), MAX_DETAIL_BYTES)),
            duration_ms: Some(self.call_started.elapsed().as_millis() as u64),
            intent: None,
            outcome,
            target,
        });
    }
}

/// `text` cut to at most `max` bytes on a character boundary, marked when cut.
pub(crate) fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut at = max;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
        text.push_str(" [cut]");
    }
    text
}

impl From<ContainerError> for GateError {
    fn from(e: ContainerError) -> Self {
        match e {
            ContainerError::NotFound(_) => GateError::NotFound(e.to_string()),
            ContainerError::Runtime(message) => GateError::Runtime(message),
        }
    }
}
