//! `GET /pauses`, `POST /pauses` and `DELETE /pauses/{id}`: an operator
//! stops remediation for part of the fleet for a while, saying why.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The longest pause (7 days): a pause forgotten for longer would quietly
/// switch remediation off; a longer stop is the kill switch, on purpose.
pub const MAX_PAUSE_SEC: u64 = 7 * 24 * 3600;

/// `POST /pauses`' body. Neither `plugin` nor `matchers`: everything pauses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    /// Only this plugin's actions pause.
    #[serde(default)]
    pub plugin: Option<String>,
    /// Only alerts whose labels match these pause, in Alertmanager's
    /// syntax: `service="crm", instance!="a:1"` (`=` and `!=`; at least
    /// one `=`).
    #[serde(default)]
    pub matchers: Option<String>,
    /// How long, e.g. `2h` (at most 7 days).
    pub duration: String,
    /// Why, for the people who see the skips (required).
    pub reason: String,
    /// A comment on who pauses, for the audit trail (`by` itself is the
    /// verified caller).
    #[serde(default)]
    pub by: Option<String>,
}

/// One active pause (`POST /pauses` answers with the one it made,
/// `DELETE /pauses/{id}` with the one it ended).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Pause {
    /// Its id (`autoheal resume ID`).
    pub id: String,
    /// Only this plugin's actions (absent: every plugin's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Only alerts matching these (absent: every alert).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matchers: Option<String>,
    /// Why.
    pub reason: String,
    /// Who paused: the verified caller's id (a token's name, a person's
    /// subject, `operator` for the shared operator token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// What the caller typed as `by`: a comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_comment: Option<String>,
    /// How the caller was proven: `person`, `token`, `shared_token`, `anonymous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_kind: Option<String>,
    /// A person's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_name: Option<String>,
    /// When it ends by itself (unix seconds).
    pub until: f64,
    /// On a replica, the replica it was made on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

impl Pause {
    /// Its scope in words: `plugin restart-crm, alerts service="crm"`, or `everything`.
    pub fn scope(&self) -> String {
        match (&self.plugin, &self.matchers) {
            (None, None) => "everything".to_owned(),
            (Some(plugin), None) => format!("plugin {plugin}"),
            (None, Some(matchers)) => format!("alerts {matchers}"),
            (Some(plugin), Some(matchers)) => format!("plugin {plugin}, alerts {matchers}"),
        }
    }
}

/// `GET /pauses`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PausesAnswer {
    /// The active pauses, the soonest to end first.
    pub pauses: Vec<Pause>,
}

/// `DELETE /pauses/{id}`'s body (it may also be empty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// A comment on who resumes, for the audit trail (`by` itself is the
    /// verified caller).
    #[serde(default)]
    pub by: Option<String>,
}
