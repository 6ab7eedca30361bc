//! `GET /approvals` and `POST /approvals/{id}/approve|deny`: the actions
//! waiting for an operator, and the operator's answer.

use autoheal_core::event::{Actor, ApprovalRequested};
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
    /// Who has granted so far, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved_by: Vec<ApprovedBy>,
}

/// A verified principal who granted an approval (or asked for it:
/// `requested_by`, among the request's fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApprovedBy {
    /// A person's subject, a token's name, `operator` for the shared token.
    pub id: String,
    /// `person`, `token`, `shared_token`.
    pub kind: String,
    /// A person's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl From<&Actor> for ApprovedBy {
    fn from(actor: &Actor) -> Self {
        Self {
            id: actor.id.clone(),
            kind: actor.kind.clone(),
            name: actor.name.clone(),
        }
    }
}

impl ApprovalListing {
    /// For people: `1 of 2 approvals: Alice` (empty when one approval is
    /// required and nobody has granted).
    pub fn progress(&self) -> Option<String> {
        // `approvals_required` is the request's (flattened in): one field in JSON.
        let required = self.request.approvals_required.unwrap_or(1);
        if required <= 1 && self.approved_by.is_empty() {
            return None;
        }
        let names: Vec<&str> = self
            .approved_by
            .iter()
            .map(|a| a.name.as_deref().unwrap_or(&a.id))
            .collect();
        let mut text = format!("{} of {required} approvals", names.len());
        if !names.is_empty() {
            text.push_str(&format!(": {}", names.join(", ")));
        }
        Some(text)
    }
}

/// The body of an answer (it may also be empty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalAnswerRequest {
    /// A note on who decides, for the audit trail (`by_comment`): who
    /// answers is the verified caller, never this.
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
    /// Granted, and recorded: more approvers must grant before it runs
    /// (`approvals` of `approvals_required`) — 200.
    Recorded,
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
            approvals: None,
            approvals_required: None,
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
    /// Recorded: grants so far, this one included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<u32>,
    /// Recorded: grants it needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals_required: Option<u32>,
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
