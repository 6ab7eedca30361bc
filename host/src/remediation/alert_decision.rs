//! What the webhook response (and an approval's answer) says about one
//! alert and plugin.

use serde::Serialize;

use autoheal_core::alert::AlertStatus;
use autoheal_core::mode::ExecutionMode;

use super::decide::SkipReason;

/// What the webhook response says about one alert (and plugin).
#[derive(Debug, Clone, Serialize)]
pub struct AlertDecision {
    /// The alert's name.
    pub alertname: String,
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// `act`, `skip`, or `approval` (a dry-run preview runs, then the
    /// action waits for an operator).
    pub decision: &'static str,
    /// Why not, for `skip`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<SkipReason>,
    /// The why, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The plugin chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Seconds of cooldown left, for `cooldown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_sec: Option<u64>,
    /// `real` or `dry_run`, for `act`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<ExecutionMode>,
}
