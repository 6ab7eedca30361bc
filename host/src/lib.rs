//! autoheal: an auto-remediation host for Prometheus Alertmanager whose
//! actions are sandboxed WebAssembly component plugins.
//!
//! Data flow: [`http`] receives a webhook → [`remediation`] decides per alert →
//! [`autoheal_sandbox`] runs the plugin, whose capability calls pass the
//! [`autoheal_sandbox::capability`] gate to a
//! [`autoheal_containers::ContainerRuntime`] → every step is an
//! [`autoheal_core::event::Event`] in the [`autoheal_core::audit`] trail.

#![warn(missing_docs)]

pub mod action_events;
pub mod app;
pub mod audit_disk;
pub mod auth;
pub mod cluster;
pub mod compiling;
pub mod config;
pub mod container_engines;
pub mod event_log;
pub mod http;
pub mod intents;
pub mod maintenance;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod parts;
pub mod plugin_events;
pub mod plugin_state;
pub mod plugin_trial;
pub mod prom_queries;
pub mod recorded;
pub mod reload;
pub mod remediation;
pub mod silence;
pub mod startup;
pub mod switches;
