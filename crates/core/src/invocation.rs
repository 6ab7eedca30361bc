//! What one plugin invocation leaves behind: the capability calls it made
//! (each checked by the host's gate) and the lines it logged.

use serde::{Deserialize, Serialize};

/// A capability call a plugin can make. The names are those of the WIT
/// contract: `INTERFACE.FUNCTION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Capability {
    /// `containers.inspect`: read a container's state.
    #[serde(rename = "containers.inspect")]
    ContainersInspect,
    /// `containers.restart`: restart a container (a real side effect).
    #[serde(rename = "containers.restart")]
    ContainersRestart,
    /// `containers.signal`: send a signal to a container's main process (an effect).
    #[serde(rename = "containers.signal")]
    ContainersSignal,
    /// `containers.exec`: run a command in a container (an effect).
    #[serde(rename = "containers.exec")]
    ContainersExec,
    /// `containers.logs`: read the last lines of a container's output.
    #[serde(rename = "containers.logs")]
    ContainersLogs,
    /// `containers.list-by-label`: the containers carrying a label.
    #[serde(rename = "containers.list-by-label")]
    ContainersListByLabel,
    /// `http.request`: a request to a URL the manifest allows. GET and HEAD
    /// are reads unless the manifest marks them effects; other methods are
    /// effects (with a breaker per host).
    #[serde(rename = "http.request")]
    HttpRequest,
    /// `prometheus.query`: an instant PromQL query (a read).
    #[serde(rename = "prometheus.query")]
    PrometheusQuery,
    /// `prometheus.query-range`: a PromQL range query (a read).
    #[serde(rename = "prometheus.query-range")]
    PrometheusQueryRange,
    /// `state.get`: a key of the plugin's own store (a read).
    #[serde(rename = "state.get")]
    StateGet,
    /// `state.set`: sets a key of the plugin's own store (an effect: not
    /// kept in dry-run).
    #[serde(rename = "state.set")]
    StateSet,
    /// `state.delete`: removes a key of the plugin's own store (an effect).
    #[serde(rename = "state.delete")]
    StateDelete,
}

impl Capability {
    /// Every call, in the order of the WIT contract.
    pub const ALL: [Capability; 12] = [
        Self::ContainersInspect,
        Self::ContainersRestart,
        Self::ContainersSignal,
        Self::ContainersExec,
        Self::ContainersLogs,
        Self::ContainersListByLabel,
        Self::HttpRequest,
        Self::PrometheusQuery,
        Self::PrometheusQueryRange,
        Self::StateGet,
        Self::StateSet,
        Self::StateDelete,
    ];

    /// The name in events and metrics, e.g. `containers.restart`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContainersInspect => "containers.inspect",
            Self::ContainersRestart => "containers.restart",
            Self::ContainersSignal => "containers.signal",
            Self::ContainersExec => "containers.exec",
            Self::ContainersLogs => "containers.logs",
            Self::ContainersListByLabel => "containers.list-by-label",
            Self::HttpRequest => "http.request",
            Self::PrometheusQuery => "prometheus.query",
            Self::PrometheusQueryRange => "prometheus.query-range",
            Self::StateGet => "state.get",
            Self::StateSet => "state.set",
            Self::StateDelete => "state.delete",
        }
    }

    /// A call that changes something (recorded, not sent, in dry-run;
    /// written as an intent before it is sent; counted by a breaker), as
    /// opposed to a read. The writes of a plugin's own state are effects
    /// for dry-run (not kept) but touch nothing outside the host: no
    /// intent, no breaker ([`Capability::is_world_effect`]).
    pub fn is_effect(self) -> bool {
        matches!(
            self,
            Self::ContainersRestart
                | Self::ContainersSignal
                | Self::ContainersExec
                | Self::HttpRequest
                | Self::StateSet
                | Self::StateDelete
        )
    }

    /// An effect on something outside the host (a container, an HTTP
    /// endpoint): written as an intent before it is sent and counted by a
    /// breaker.
    pub fn is_world_effect(self) -> bool {
        self.is_effect() && !matches!(self, Self::StateSet | Self::StateDelete)
    }

    /// What a person calls it in a sentence: "restart crm-api".
    pub fn verb(self) -> &'static str {
        match self {
            Self::ContainersInspect => "inspect",
            Self::ContainersRestart => "restart",
            Self::ContainersSignal => "signal",
            Self::ContainersExec => "exec in",
            Self::ContainersLogs => "read the logs of",
            Self::ContainersListByLabel => "list",
            Self::HttpRequest => "request",
            Self::PrometheusQuery => "query",
            Self::PrometheusQueryRange => "query over a range",
            Self::StateGet => "read the state key",
            Self::StateSet => "set the state key",
            Self::StateDelete => "delete the state key",
        }
    }
}

/// How the host answered a capability call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// Allowed and carried out.
    Ok,
    /// Allowed, but only recorded because of dry-run.
    Recorded,
    /// Refused by the host (allow-list, call budget); never reached the engine.
    Denied,
    /// Refused by the restart circuit breaker; never reached the engine.
    CircuitOpen,
    /// Allowed; the engine failed.
    Failed,
    /// A restart of a container that another action restarted (or is
    /// restarting) within the target cooldown: it joins that restart and
    /// never reaches the breaker or the engine.
    Joined,
}

impl CallOutcome {
    /// The name in events and metrics, e.g. `circuit_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Recorded => "recorded",
            Self::Denied => "denied",
            Self::CircuitOpen => "circuit_open",
            Self::Failed => "failed",
            Self::Joined => "joined",
        }
    }
}

/// One capability call and its outcome.
///
/// Fields are declared in alphabetical order: that is the order in which
/// audit trails written before the typed event have them, and serde writes
/// fields in declaration order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapabilityCall {
    /// What was called.
    pub capability: Capability,
    /// Why it was refused or how it failed; for a call that went through,
    /// what it carried or gave back when that matters (the signal, the
    /// command and its exit code, how many lines were read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// How long the host took to answer it, in milliseconds (absent in
    /// trails written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The id of the `restart_intent` (or `effect_intent`) event recorded
    /// (durably) before a real effect was sent; absent for every other
    /// call, and in trails written before intents existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<u64>,
    /// How the host answered.
    pub outcome: CallOutcome,
    /// The container named in the call (`label:KEY=VALUE` for a list).
    pub target: String,
}

impl CapabilityCall {
    /// An effect outside the host (restart, signal, exec, an HTTP request
    /// that is not a read) that was carried out, recorded (dry-run), or
    /// sent and failed: what makes an action one that acted, and its
    /// `targets`. A write of the plugin's own state is not one: it acts on
    /// nothing outside the host.
    pub fn is_effect_attempt(&self) -> bool {
        // A request is an effect or a read by its method; the gate treats
        // an effect as one (recorded in dry-run, else its intent written
        // first) and a read never so: that is what tells them apart here.
        if self.capability == Capability::HttpRequest
            && self.outcome != CallOutcome::Recorded
            && self.intent.is_none()
        {
            return false;
        }
        self.capability.is_world_effect()
            && matches!(
                self.outcome,
                CallOutcome::Ok | CallOutcome::Recorded | CallOutcome::Failed
            )
    }

    /// An effect that reached (or was sent to) the engine: what the
    /// breakers count.
    pub fn is_real_effect(&self) -> bool {
        self.is_effect_attempt() && self.outcome != CallOutcome::Recorded
    }
}

/// A line a plugin logged through the `log` import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// The message, cut to a bounded length.
    pub message: String,
}
