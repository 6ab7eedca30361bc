//! `POST /alert`: Alertmanager's webhook, and what was decided per alert.

use autoheal_core::alert::AlertStatus;
use autoheal_core::event::SkipReason;
use autoheal_core::mode::ExecutionMode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What the engine decided for one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The plugin runs (in the `mode` of the decision).
    Act,
    /// Nothing runs; `reason` says why.
    Skip,
    /// A dry-run preview runs, then the action waits for an operator.
    Approval,
    /// The action is admitted and waits for a place to run (its plugin's
    /// `max_concurrent`, or `[budget]` actions in flight, are taken): it
    /// runs when one frees, in arrival order.
    Queued,
    /// The alert has not been firing for the plugin's `[match] firing_for`
    /// yet: it is held, and decided afresh at `deferred_until` unless it
    /// resolves first.
    Deferred,
}

impl Decision {
    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Act => "act",
            Decision::Skip => "skip",
            Decision::Approval => "approval",
            Decision::Queued => "queued",
            Decision::Deferred => "deferred",
        }
    }
}

/// One alert's decision, as `POST /alert` answers it (and as an approved
/// action's answer repeats it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertDecision {
    /// The alert's name.
    pub alertname: String,
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// Firing or resolved.
    #[schema(value_type = String, example = "firing")]
    pub status: AlertStatus,
    /// What was decided.
    pub decision: Decision,
    /// Why not, for `skip` (an `autoheal_core` `SkipReason`, e.g. `cooldown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub reason: Option<SkipReason>,
    /// The why, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The plugin chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Seconds of cooldown left, for `cooldown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_sec: Option<u64>,
    /// `real` or `dry_run`, for `act`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub mode: Option<ExecutionMode>,
    /// When a `deferred` alert is decided afresh (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred_until: Option<f64>,
}

/// `POST /alert`'s answer: one decision per alert received (after the
/// `max_alerts_per_webhook` cut).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertAnswer {
    /// How many alerts were decided.
    pub received: usize,
    /// Each alert's decision, in the order received.
    pub decisions: Vec<AlertDecision>,
}

/// Alertmanager's webhook payload (version 4), as `autoheal_core::alert`
/// reads it: `receiver`, `status`, `alerts` (each with `status`, `labels`,
/// `annotations`, `startsAt`, `endsAt`, `generatorURL`, `fingerprint`),
/// `groupKey`, `truncatedAlerts`, ...
#[derive(Debug, Clone, ToSchema)]
#[schema(value_type = Object)]
pub struct WebhookPayload(#[allow(dead_code)] serde_json::Map<String, serde_json::Value>);
