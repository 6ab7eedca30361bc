//! Integration tests, compiled into one binary (each test binary links
//! wasmtime, so one binary saves minutes of linking).

mod admin;
mod approvals;
mod audit;
mod auth;
mod binary;
mod budget;
mod cli;
mod cluster;
mod console;
mod containment;
mod crash;
mod diskfull;
mod e2e;
mod engine;
mod engines;
mod hostile;
mod http;
mod intents;
mod languages;
mod live;
mod monitoring;
mod notify;
mod openapi;
mod plugin_cli;
mod real;
mod reload;
mod remediation;
mod rules;
mod sandbox;
mod scrape;
mod skipped;
mod slow_clients;
mod support;
mod verify;
mod vision;
