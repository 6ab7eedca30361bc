//! Integration tests, compiled into one binary (each test binary links
//! wasmtime, so one binary saves minutes of linking).

mod audit;
mod binary;
mod engine;
mod http;
mod sandbox;
mod support;
