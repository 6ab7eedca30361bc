//! `GET`/`POST /ack`: an alert silenced in Alertmanager.

use autoheal_core::matcher::Matcher;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /ack`'s body (`GET /ack` takes the same fields in its query).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Which alerts: a JSON object of label values, or matchers as text
    /// (`alertname=~"Tcp.*",job="x"`). Required.
    #[schema(value_type = Option<Object>)]
    pub labels: Option<serde_json::Value>,
    /// How long the silence lasts (`30m` unless given; at most `ack_max_duration`).
    pub duration: Option<String>,
    /// The silence's comment (`acknowledged in autoheal` unless given).
    pub comment: Option<String>,
}

/// One Alertmanager matcher, as the silence was created with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    /// The label name.
    pub name: String,
    /// The value, or the regular expression.
    pub value: String,
    /// `=~` or `!~`.
    pub is_regex: bool,
    /// `=` or `=~`.
    pub is_equal: bool,
}

impl From<Matcher> for SilenceMatcher {
    fn from(m: Matcher) -> Self {
        Self {
            name: m.name,
            value: m.value,
            is_regex: m.is_regex,
            is_equal: m.is_equal,
        }
    }
}

/// The silence created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AckAnswer {
    /// Alertmanager's id of the silence.
    pub silence_id: String,
    /// The silence in Alertmanager's UI.
    pub url: String,
    /// What it silences.
    pub matchers: Vec<SilenceMatcher>,
    /// When it began (RFC 3339).
    pub starts_at: String,
    /// When it ends (RFC 3339).
    pub ends_at: String,
    /// The duration asked for, as written.
    pub duration: String,
}

/// A silence as Alertmanager lists it (`GET /api/v2/silences`), the fields
/// `autoheal silences` shows: Alertmanager's answer, not a route of
/// autoheal's, so it is in no route's answers and not in the OpenAPI
/// document. Fields Alertmanager adds are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerSilence {
    /// Alertmanager's id of the silence.
    pub id: String,
    /// Whether it is in force.
    pub status: SilenceStatus,
    /// What it silences.
    pub matchers: Vec<Matcher>,
    /// When it begins (RFC 3339).
    pub starts_at: String,
    /// When it ends (RFC 3339).
    pub ends_at: String,
    /// Who made it: `autoheal (ID)` for the silences of `autoheal ack`,
    /// ID the verified caller (`autoheal` alone before there were roles).
    pub created_by: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

impl AlertmanagerSilence {
    /// `createdBy` of the silences autoheal makes (and made before it named who).
    pub const CREATED_BY_AUTOHEAL: &'static str = "autoheal";

    /// `createdBy` of a silence autoheal makes for the verified caller `by`:
    /// `autoheal (ci)`, so that Alertmanager's UI says who acked.
    pub fn created_by(by: &str) -> String {
        format!("{} ({by})", Self::CREATED_BY_AUTOHEAL)
    }

    /// Whether autoheal made this silence.
    pub fn is_autoheal(&self) -> bool {
        self.created_by == Self::CREATED_BY_AUTOHEAL
            || self
                .created_by
                .strip_prefix(Self::CREATED_BY_AUTOHEAL)
                .is_some_and(|rest| rest.starts_with(" (") && rest.ends_with(')'))
    }
}

/// A silence's `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilenceStatus {
    /// Its state.
    pub state: SilenceState,
}

/// Whether a silence is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    /// It silences now.
    Active,
    /// It begins later.
    Pending,
    /// It ended.
    Expired,
}

impl SilenceState {
    /// Alertmanager's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Pending => "pending",
            Self::Expired => "expired",
        }
    }
}
