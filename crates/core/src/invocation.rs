//! What one plugin invocation leaves behind: the capability calls it made
//! (each checked by the host's gate) and the lines it logged.

use serde::{Deserialize, Serialize};

/// A capability a plugin can call. The names are those of the WIT contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Capability {
    /// `containers.inspect`: read a container's state.
    #[serde(rename = "containers.inspect")]
    ContainersInspect,
    /// `containers.restart`: restart a container (a real side effect).
    #[serde(rename = "containers.restart")]
    ContainersRestart,
}

impl Capability {
    /// The name in events and metrics, e.g. `containers.restart`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContainersInspect => "containers.inspect",
            Self::ContainersRestart => "containers.restart",
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
    /// Why it was refused or how it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The id of the `restart_intent` event recorded (durably) before a
    /// real restart was sent; absent for every other call, and in trails
    /// written before intents existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<u64>,
    /// How the host answered.
    pub outcome: CallOutcome,
    /// The container named in the call.
    pub target: String,
}

impl CapabilityCall {
    /// A restart that was carried out, recorded (dry-run), or sent and
    /// failed: the `targets` of an action event. Refused ones are not.
    pub fn is_restart_attempt(&self) -> bool {
        self.capability == Capability::ContainersRestart
            && matches!(
                self.outcome,
                CallOutcome::Ok | CallOutcome::Recorded | CallOutcome::Failed
            )
    }

    /// A restart that reached (or was sent to) the container engine: the
    /// ones the restart circuit breaker counts.
    pub fn is_real_restart(&self) -> bool {
        self.is_restart_attempt() && self.outcome != CallOutcome::Recorded
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
