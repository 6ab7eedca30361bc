//! Integration tests, compiled into one binary (each test binary links
//! wasmtime, so one binary saves minutes of linking).

mod audit;
mod binary;
mod e2e;
mod engine;
mod http;
mod live;
mod real;
mod reload;
mod rules;
mod sandbox;
mod scrape;
mod support;
