//! `POST /plugins/reload` and `POST /plugins/{name}/test`.

use autoheal_core::alert::AlertStatus;
use autoheal_core::event::SkipReason;
use autoheal_core::invocation::{CapabilityCall, LogLine};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::alert::Decision;

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReloadSummary {
    /// Plugins loaded for the first time.
    pub loaded: Vec<String>,
    /// Plugins replaced by a new version.
    pub replaced: Vec<String>,
    /// Plugins whose manifest is gone.
    pub unloaded: Vec<String>,
    /// Manifest files that did not load.
    pub rejected: Vec<String>,
    /// Plugins serving after the reload.
    pub serving: usize,
}

/// `POST /plugins/{name}/test`'s answer: one dry-run trial per alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrialAnswer {
    /// Each alert's trial, in order.
    pub reports: Vec<TestReport>,
}

/// What one trial run of a plugin on one alert did (always in dry-run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TestReport {
    /// The plugin's name.
    pub plugin: String,
    /// Its version.
    pub version: String,
    /// The alert's name.
    pub alertname: String,
    /// Firing or resolved.
    #[schema(value_type = String, example = "firing")]
    pub status: AlertStatus,
    /// What the engine would decide for this alert with no cooldown running
    /// (`act` or `skip`).
    pub decision: Decision,
    /// Why the engine would skip the alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub skip_reason: Option<SkipReason>,
    /// The why, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_detail: Option<String>,
    /// True when the plugin returned `ok` (it acted, or skipped).
    pub ok: bool,
    /// True when the plugin decided not to act.
    pub skipped: bool,
    /// Its `ok` message: what it did, or why it skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Its error, when it did not return `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `timeout`, `memory`, `trap: ...` or `plugin_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its capability calls (`autoheal_core` `CapabilityCall`s).
    #[schema(value_type = Vec<Object>)]
    pub calls: Vec<CapabilityCall>,
    /// Reads that had no recorded answer (`GET https://…`, `PromQL …`)
    /// and failed: `plugin test` without `--live-reads` answers reads only
    /// from its answers file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unanswered: Vec<String>,
    /// Calls it made after its budget of 64 capability calls per invocation
    /// was used up: refused, and not listed in `calls`.
    #[serde(default)]
    pub calls_over_budget: usize,
    /// What it logged (`level`, `message`).
    #[schema(value_type = Vec<Object>)]
    pub logs: Vec<LogLine>,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// Wall-clock time, in milliseconds.
    pub duration_ms: f64,
    /// The plugin's state after the run (key → value), for a plugin with
    /// `[capabilities.state]`: the trial's own copy, which its dry-run
    /// writes changed (the host's state never is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<std::collections::BTreeMap<String, String>>,
}
