//! `GET /auth/me`: who the caller's credentials prove it is, and what it
//! may do — so that a client (the console) shows only what it may use.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One role on some plugins, and the rule that gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GrantAnswer {
    /// `webhook`, `viewer`, `operator` or `approver`.
    pub role: String,
    /// The plugins it covers, as globs (`*` any run of characters):
    /// `["*"]` for every plugin and what belongs to none (the kill switch).
    pub plugins: Vec<String>,
    /// Where it came from: `[auth.tokens.ci]`, `AUTOHEAL_OPERATOR_TOKEN`, ...
    pub rule: String,
}

/// `GET /auth/me`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MeAnswer {
    /// `person`, `token`, `shared_token` or `anonymous`.
    pub kind: String,
    /// A person's subject, a token's name, `operator` (the shared operator
    /// token), or `anonymous`: `by` in the trail.
    pub id: String,
    /// A person's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A person's groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// What it may do.
    pub grants: Vec<GrantAnswer>,
}
