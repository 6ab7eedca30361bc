//! The core of autoheal that every other room depends on: the typed
//! [`event::Event`] and the [`audit`] trail that sequences, persists and
//! broadcasts it, the Alertmanager [`alert`] it is about, the
//! [`mode::ExecutionMode`] an action runs in, the [`invocation`] records a
//! plugin leaves, the members of an HA group asked in turn ([`failover`]),
//! and small shared helpers ([`util`]).
//!
//! Nothing here knows about wasmtime, HTTP or container engines, so the
//! dependencies of the workspace point one way: towards this crate.

#![warn(missing_docs)]

pub mod alert;
pub mod audit;
pub mod event;
pub mod failover;
pub mod invocation;
pub mod keys;
pub mod matcher;
pub mod mode;
pub mod proof;
pub mod query;
pub mod util;
