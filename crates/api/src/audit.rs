//! `GET /audit`: the newest events of the trail, filtered.

use autoheal_core::event::Event;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// `GET /audit`'s answer. Each event is sent as its line was written, not
/// parsed and written out again; a reader parses it as an
/// `autoheal_core::event::Event` ([`AuditAnswer::parsed_events`]).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditAnswer {
    /// How many events follow.
    pub count: usize,
    /// The events, oldest first (each an `autoheal_core` `Event`: `id`,
    /// `ts`, `kind`, and the fields of its kind).
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Box<RawValue>>,
    /// With `cluster=true`: what each replica gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Vec<ReplicaRead>>,
}

impl AuditAnswer {
    /// The events, each parsed (an event this build does not know is an error).
    pub fn parsed_events(&self) -> Result<Vec<Event>, serde_json::Error> {
        self.events
            .iter()
            .map(|raw| serde_json::from_str(raw.get()))
            .collect()
    }
}

/// One replica's part of a `cluster=true` read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplicaRead {
    /// Its name.
    pub replica: String,
    /// Where it was asked (absent for the replica answering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Events it gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// Why it gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether it was not asked at all (its URL is not http(s)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<bool>,
}
