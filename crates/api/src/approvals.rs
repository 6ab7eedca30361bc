//! `GET /approvals` and `POST /approvals/{id}/approve|deny`: the actions
//! waiting for an operator, and the operator's answer.

use autoheal_core::event::ApprovalRequested;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::alert::AlertDecision;

/// `GET /approvals`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalsAnswer {
    /// What waits, oldest first (on a replica, every replica's).
    pub pending: Vec<ApprovalListing>,
}

/// One pending approval: the recorded request (the fields of the
/// `approval_requested` event: `approval`, `alertname`, `plugin`,
/// `plugin_version`, `fingerprint`, `alert`, `calls`, `preview`, `cause`,
/// `cooldown_key`, `expires_at`, ...) and when it was asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalListing {
    /// When it was asked for (unix seconds).
    pub requested_at: f64,
    /// The recorded request (`approval_requested`'s fields).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub request: ApprovalRequested,
    /// On a replica, the replica it waits on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// Seconds until it expires (in `GET /approvals`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_sec: Option<f64>,
    /// Set when another replica published it cut to fit etcd: long strings
    /// and lists are shortened (the owner lists it whole).
    #[serde(default, skip_serializing_if = "crate::is_false")]
    pub truncated: bool,
}

/// The body of an answer (it may also be empty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalAnswerRequest {
    /// Who decides, for the audit trail.
    #[serde(default)]
    pub by: Option<String>,
    /// Why, for the audit trail.
    #[serde(default)]
    pub comment: Option<String>,
}

/// What became of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalOutcome {
    /// Approved: the action ran (`decision`) — 200.
    Granted,
    /// Denied — 200.
    Denied,
    /// It waits on another replica, which applies the answer within a second — 202.
    Forwarded,
    /// Answered after it expired — 409.
    ApprovalExpired,
    /// What was previewed is gone (another component or manifest) — 409.
    ApprovalStale,
}

impl ApprovalAnswer {
    /// An answer about `approval`, `granted` and nothing else until set.
    pub fn new(approval: String) -> Self {
        Self {
            approval,
            outcome: ApprovalOutcome::Granted,
            decision: None,
            replica: None,
            detail: None,
            error: None,
        }
    }
}

/// `POST /approvals/{id}/approve|deny`'s answer (200, 202, or 409 for an
/// approval that ended by this answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalAnswer {
    /// The approval's id.
    pub approval: String,
    /// What became of it.
    pub outcome: ApprovalOutcome,
    /// Granted or denied: what the approved action decided (`null` when denied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Option<AlertDecision>>,
    /// Forwarded: the replica it waits on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// Forwarded: what happens next, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Expired or stale: why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
