//! The one event type that flows everywhere: the engine emits it, the audit
//! writer persists it, and (later) SSE subscribers and metrics consume it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What happened. The first six keep the names of the original system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    WebhookReceived,
    DecisionSkip,
    ActionDryRun,
    ActionOk,
    ActionFail,
    Ack,
    /// A webhook body that could not be accepted (4xx).
    WebhookRejected,
    /// An action was dispatched; its cooldown starts here.
    ActionStarted,
    /// A capability call refused by the host (allow-list or a guard).
    CapabilityDenied,
    PluginLoaded,
    PluginRejected,
    PluginUnloaded,
    /// Something the operator should know about the host itself
    /// (e.g. a torn audit line set aside at start).
    HostWarning,
    HostStarted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebhookReceived => "webhook_received",
            Self::DecisionSkip => "decision_skip",
            Self::ActionDryRun => "action_dry_run",
            Self::ActionOk => "action_ok",
            Self::ActionFail => "action_fail",
            Self::Ack => "ack",
            Self::WebhookRejected => "webhook_rejected",
            Self::ActionStarted => "action_started",
            Self::CapabilityDenied => "capability_denied",
            Self::PluginLoaded => "plugin_loaded",
            Self::PluginRejected => "plugin_rejected",
            Self::PluginUnloaded => "plugin_unloaded",
            Self::HostWarning => "host_warning",
            Self::HostStarted => "host_started",
        }
    }
}

/// An event before the audit log has given it an id and a timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: EventKind,
    pub fields: Map<String, Value>,
}

impl NewEvent {
    pub fn new(kind: EventKind) -> Self {
        Self {
            kind,
            fields: Map::new(),
        }
    }

    /// Adds a field; `Option::None` values are left out rather than written as null.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        if !value.is_null() {
            self.fields.insert(key.to_owned(), value);
        }
        self
    }
}

/// A recorded event: `{"id":..,"ts":..,"kind":..,<fields>}` on one JSONL line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Monotonic across restarts of the host.
    pub id: u64,
    /// Unix seconds with sub-second precision.
    pub ts: f64,
    pub kind: EventKind,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl Event {
    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    pub fn alertname(&self) -> Option<&str> {
        self.str_field("alertname")
    }
}

/// Current wall-clock time as unix seconds.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
