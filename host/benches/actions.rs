//! Actions run, counted from the trail, with the limits as shipped: the
//! bundled restart-crm-api manifest keeps its `limits` (`max_concurrent` 4)
//! and the config is the default (`max_pending_actions` 256, dry-run, fsync
//! `every_batch`). What each row changes is printed beside it.
//!
//! - **act every time**: closed loop, every request a distinct alert, the
//!   cooldown 0 and `min_uptime_sec` 0 so that each one acts; the floor (a
//!   bare axum server parsing the same webhooks) in the same run. Counted:
//!   the `action_dry_run` events in the trail, over the time from the
//!   first request to the last action's end (the queue drains after the
//!   load stops), and the `overloaded` skips.
//! - **storm**: one webhook of 1,000 distinct alerts, each its own cooldown
//!   key (`[cooldown_key] labels = ["instance"]`), sent again after its
//!   `Retry-After` while some found no room, as a sender that honours it
//!   would: time until the last action has run, and `GET /`'s latency
//!   meanwhile (one connection, closed loop).
//!
//! Run: `cargo xtask build-plugins && cargo bench -p autoheal --bench actions`.
//! SECONDS (default 5) sets each act row's length.

#[allow(dead_code)] // each bench uses some of the shared helpers
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use autoheal_core::util::unix_now;
use common::loadgen::{
    bench_runtime, closed_loop_of, connect, floor_server, get, ms, post_alert, run_length, shipped_server,
    webhook_from,
};
use tokio::io::AsyncWriteExt;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every alert acts (in dry-run): no cooldown, and the container's uptime does not matter.
fn act_every_time(manifest: String) -> String {
    manifest
        .replace("cooldown = \"10m\"", "cooldown = \"0s\"")
        .replace("min_uptime_sec = \"60\"", "min_uptime_sec = \"0\"")
}

/// Each alert its own cooldown key.
fn cooldown_per_instance(manifest: String) -> String {
    manifest
        .replace("min_uptime_sec = \"60\"", "min_uptime_sec = \"0\"")
        .replace("[config]", "[cooldown_key]\nlabels = [\"instance\"]\n\n[config]")
}

/// What the trail says was done.
#[derive(Default, Debug)]
struct Done {
    /// `action_dry_run` events.
    actions: u64,
    /// `action_started` + `action_queued` (each admitted action records one).
    admitted: u64,
    overloaded: u64,
    /// Unix time of the last `action_dry_run`.
    last_action: f64,
    /// The longest `queued_sec` of an `action_started`.
    longest_wait: f64,
}

fn read_trail(path: &Path) -> Done {
    let mut done = Done::default();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        match event["kind"].as_str() {
            Some("action_dry_run") => {
                done.actions += 1;
                done.last_action = done.last_action.max(event["ts"].as_f64().unwrap_or(0.0));
            }
            Some("action_queued") => done.admitted += 1,
            Some("action_started") if event["queued_sec"].is_null() => done.admitted += 1,
            Some("action_started") => {
                done.longest_wait = done.longest_wait.max(event["queued_sec"].as_f64().unwrap_or(0.0))
            }
            Some("decision_skip") if event["reason"] == "overloaded" => done.overloaded += 1,
            _ => {}
        }
    }
    done
}

/// Waits until every admitted action has ended (or nothing moved for 10 s).
async fn drained(trail: &Path) -> Done {
    let mut last = (0, Instant::now());
    loop {
        let done = read_trail(trail);
        if done.actions >= done.admitted && done.admitted > 0 {
            return done;
        }
        if done.actions != last.0 {
            last = (done.actions, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(10) {
            eprintln!("the queue did not drain: {done:?}");
            return done;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A distinct one-alert webhook for each request number.
fn distinct(addr: SocketAddr) -> impl Fn(u64) -> Arc<[u8]> + Send + Sync + 'static {
    move |n| post_alert(addr, &webhook_from(n, 1))
}

async fn act_rows(duration: Duration) {
    println!(
        "| act every time, distinct alerts (manifest: cooldown 0s, min_uptime_sec 0; limits as shipped) | connections | floor req/s | webhooks answered/s | non-200 | actions run | actions/s | actions/s / floor | overloaded skips | longest queue wait | webhook p50 | webhook p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let floor = floor_server().await;
    for connections in [1, 50] {
        let dir = tempfile::tempdir().unwrap();
        let addr = shipped_server(dir.path(), act_every_time).await;
        let base = closed_loop_of(floor, distinct(floor), connections, duration).await;
        let started = unix_now();
        let run = closed_loop_of(addr, distinct(addr), connections, duration).await;
        let done = drained(&dir.path().join("audit.jsonl")).await;
        let span = (done.last_action - started).max(duration.as_secs_f64());
        let rate = done.actions as f64 / span;
        println!(
            "| dry-run, fsync every_batch | {connections} | {:.0} | {:.0} | {} | {} | {rate:.0} | {:.2} | {} | {:.2} s | {} | {} |",
            base.rate(),
            run.rate(),
            run.errors,
            done.actions,
            rate / base.rate(),
            done.overloaded,
            done.longest_wait,
            ms(run.p50),
            ms(run.p99),
        );
    }
}

/// Posts `body` until no alert is left without room, waiting `Retry-After`
/// between tries; returns how many times it was sent.
async fn send_until_taken(addr: SocketAddr, body: &str) -> u32 {
    let client = reqwest::Client::new();
    let mut sent = 0;
    loop {
        sent += 1;
        let response = client
            .post(format!("http://{addr}/alert"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        if response.status() != 503 {
            assert!(response.status().is_success(), "{}", response.status());
            return sent;
        }
        let wait = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(1);
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
}

async fn storm_row() {
    const ALERTS: usize = 1000;
    println!(
        "\n| storm: one webhook of {ALERTS} distinct alerts (manifest: `[cooldown_key] labels = [\"instance\"]`, min_uptime_sec 0; limits as shipped) | sent (Retry-After honoured) | actions run | until the last action | overloaded skips | `GET /` p50 | `GET /` p99 | `GET /` max | RSS before → peak |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("audit.jsonl");
    let addr = shipped_server(dir.path(), cooldown_per_instance).await;
    let storming = Arc::new(AtomicBool::new(true));
    let poller = {
        let storming = storming.clone();
        tokio::spawn(async move {
            let mut stream = connect(addr).await;
            let request = get(addr, "/");
            let (mut latencies, mut buf, mut peak) = (Vec::new(), Vec::new(), 0);
            while storming.load(Ordering::Relaxed) {
                peak = peak.max(rss_mib());
                let sent = Instant::now();
                stream.write_all(&request).await.unwrap();
                assert!(common::loadgen::read_response(&mut stream, &mut buf).await);
                latencies.push(sent.elapsed());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            latencies.sort();
            (latencies, peak)
        })
    };
    let before = rss_mib();
    let started = unix_now();
    let sent = send_until_taken(addr, &webhook_from(0, ALERTS)).await;
    let done = drained(&trail).await;
    storming.store(false, Ordering::Relaxed);
    let (latencies, peak) = poller.await.unwrap();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "| dry-run, fsync every_batch | {sent} | {} | {:.2} s | {} | {} | {} | {} | {before} → {peak} MiB |",
        done.actions,
        done.last_action - started,
        done.overloaded,
        ms(at(0.5)),
        ms(at(0.99)),
        ms(*latencies.last().unwrap()),
    );
}

/// This process's resident memory (server and load generator), MiB.
fn rss_mib() -> u64 {
    common::proc_status_kib("self", "VmRSS:") / 1024
}

fn main() {
    let duration = run_length(5);
    let only = std::env::var("ONLY").unwrap_or_default();
    bench_runtime().block_on(async {
        if "act".contains(only.as_str()) || only.is_empty() {
            act_rows(duration).await;
        }
        if "storm".contains(only.as_str()) || only.is_empty() {
            storm_row().await;
        }
    });
}
