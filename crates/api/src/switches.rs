//! `POST /admin/enabled` and `POST /admin/dry-run`: the kill switch and
//! dry-run, flipped without a restart.

use autoheal_core::mode::{DryRunReason, ExecutionMode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /admin/enabled`'s body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnabledRequest {
    /// The kill switch: `false` stops every action.
    pub enabled: bool,
    /// Who flips it, for the audit trail.
    #[serde(default)]
    pub by: Option<String>,
}

/// `POST /admin/dry-run`'s body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunRequest {
    /// `false` lets actions really happen (refused with a 409 where the
    /// real-mode interlock forbids it).
    pub dry_run: bool,
    /// Who flips it, for the audit trail.
    #[serde(default)]
    pub by: Option<String>,
}

/// The switches after a flip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SwitchesAnswer {
    /// The kill switch.
    pub enabled: bool,
    /// The dry-run switch.
    pub dry_run: bool,
    /// What an action would do now.
    #[schema(value_type = String, example = "dry_run")]
    pub mode: ExecutionMode,
    /// Why `dry_run`, when it is.
    #[schema(value_type = Option<String>)]
    pub dry_run_reason: Option<DryRunReason>,
    /// Whether actions are real now.
    pub real: bool,
    /// On a replica, whether the flip reached the others; `null` on a single host.
    pub cluster: Option<SharedFlip>,
}

/// Whether a flip reached the other replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SharedFlip {
    /// `true`: every replica has it; `false`: this replica only, for now.
    pub shared: bool,
    /// Why not yet, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
