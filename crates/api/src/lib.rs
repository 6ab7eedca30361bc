//! autoheal's HTTP API as types: the request and answer of every route
//! (`routes` lists them, and the host's router is built from that list),
//! the records replicas share through etcd (`cluster`), and the OpenAPI 3.1
//! document and its markdown page derived from both (`openapi`,
//! `markdown`).
//!
//! The server serializes these types and the CLI deserializes them, so a
//! renamed field is a compile error on both sides instead of a blank in a
//! command's output. The JSON field names are the wire format that tests,
//! the console (`web/`) and the monitoring rules read: they change only on
//! purpose. Events are `autoheal_core::event`'s, reused, not copied.
//!
//! Light on purpose (serde and utoipa's derive only): the CLI and the fuzz
//! targets link it without an HTTP stack or a runtime.

#![warn(missing_docs)]

pub mod ack;
pub mod alert;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod cluster;
pub mod error;
pub mod markdown;
pub mod openapi;
pub mod pauses;
pub mod plugins;
pub mod routes;
pub mod signin;
pub mod status;
pub mod switches;

pub(crate) fn is_false(value: &bool) -> bool {
    !*value
}
