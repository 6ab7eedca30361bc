//! `GET /audit` on trails of 100,000 and 1,000,000 events, each filter of
//! issue 13 through the server (the index for kind and alertname filters, a
//! read from the end for the rest) against the scan of the file it replaced,
//! with 1 and 10 clients and the host's RSS growth under the 10; then
//! `/alert` throughput with 0, 1 and 10 `/audit` pollers, paced and back to back.
//!
//! Run: `cargo xtask bench`, or `cargo xtask build-plugins && cargo bench -p
//! autoheal --bench audit`. SECONDS (default 2) sets each run's length.

#[allow(dead_code)] // each bench uses some of the shared helpers
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use autoheal_core::audit::{AuditQuery, FsyncPolicy, read_tail};
use common::loadgen::{
    Run, autoheal_server, bench_runtime, closed_loop, get, ms, open_loop, post_alert, run_length, webhook,
};

// The allocator the `autoheal` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The first event's `ts`; each next one is 1 ms later.
const FIRST_TS: f64 = 1_796_000_000.0;

/// `events` events, oldest first: 90 % `decision_skip`, 10 % `action_ok`,
/// one in a thousand about `DiskFull`, one `ack` (a rare kind) among the
/// first hundred.
fn mixed_trail(path: &std::path::Path, events: u64) {
    use std::io::Write;
    // Written as it is made: a trail held in memory first would be freed
    // while the host starts and hide what the start costs.
    let mut text = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..events {
        let ts = FIRST_TS + i as f64 / 1000.0;
        let alertname = if i % 1000 == 7 {
            "DiskFull"
        } else {
            "TcpEndpointDownFast"
        };
        let kind = match i {
            50 => "ack",
            _ if i % 10 == 3 => "action_ok",
            _ => "decision_skip",
        };
        writeln!(
            text,
            r#"{{"alertname":"{alertname}","detail":"alert has no annotation autoheal: \"true\"","fingerprint":"{i:016x}","id":{id},"kind":"{kind}","reason":"not_annotated","status":"firing","ts":{ts}}}"#,
            id = i + 1
        )
        .unwrap();
    }
    text.flush().unwrap();
}

/// This process's resident set (the host runs in it), in KiB.
fn rss_kib() -> u64 {
    common::proc_status_kib("self", "VmRSS:")
}

/// `run`, and the most the RSS grew above its level before, in MiB.
async fn with_peak_rss<F: std::future::Future<Output = Run>>(run: F) -> (Run, f64) {
    let before = rss_kib();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut peak = before;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak
        })
    };
    let result = run.await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    (result, peak.saturating_sub(before) as f64 / 1024.0)
}

fn median_of(runs: usize, mut f: impl FnMut() -> usize) -> (usize, Duration) {
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..runs {
        let started = Instant::now();
        found = f();
        times.push(started.elapsed());
    }
    times.sort();
    (found, times[runs / 2])
}

/// A paced poller's rate: ten times what a console or dashboard refreshing
/// every second asks.
const POLLS_PER_SECOND: u64 = 10;

/// `/alert` (cooldown skip, 10 connections) while `pollers` clients poll
/// `poll`, each `paced` times a second, or back to back (`None`).
async fn alert_with_pollers(
    addr: SocketAddr,
    poll: &str,
    pollers: u64,
    paced: Option<u64>,
    duration: Duration,
) -> (Run, Run) {
    let (alert, poll) = (post_alert(addr, &webhook(1)), get(addr, poll));
    let alerts = closed_loop(addr, &alert, 10, duration);
    let polls = async {
        match paced {
            _ if pollers == 0 => None,
            Some(rate) => Some(open_loop(addr, &poll, rate * pollers, pollers, duration).await),
            None => Some(closed_loop(addr, &poll, pollers as usize, duration).await),
        }
    };
    let (alerts, polls) = tokio::join!(alerts, polls);
    let polls = polls.unwrap_or(Run {
        requests: 0,
        elapsed: duration,
        p50: Duration::ZERO,
        p99: Duration::ZERO,
        errors: 0,
    });
    (alerts, polls)
}

fn main() {
    let duration = run_length(2);
    let runtime = bench_runtime();
    runtime.block_on(async {
        let mut million = None;
        println!(
            "| events | filter | found | scan of the file p50 | server, 1 client p50 | 10 clients p50 | 10 clients p99 | RSS growth, 10 clients |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        let mut starts = Vec::new();
        let mut warmups = Vec::new();
        for events in [100_000u64, 1_000_000] {
            let dir = tempfile::tempdir().unwrap();
            let trail = dir.path().join("audit.jsonl");
            mixed_trail(&trail, events);
            let rss_before = rss_kib();
            let started = Instant::now();
            let addr = autoheal_server(dir.path(), "10m", FsyncPolicy::EveryBatch).await;
            starts.push((events, started.elapsed(), (rss_kib() as f64 - rss_before as f64) / 1024.0));
            // The first burst of 10 clients starts the threads that serve
            // them (each with its allocator heap): counted once, here, not
            // in the first filter's row.
            let (_, warm_rss) = with_peak_rss(closed_loop(addr, &get(addr, "/audit?n=200"), 10, duration)).await;
            warmups.push((events, warm_rss));
            // The newest 10 % of the trail.
            let since = FIRST_TS + (events as f64 * 0.9) / 1000.0;
            let filters = [
                ("`n` only", "n=200".to_owned()),
                ("common kind (`decision_skip`)", "kind=decision_skip&n=200".to_owned()),
                ("rare kind (`ack`, 1 event, near the start)", "kind=ack&n=200".to_owned()),
                ("absent kind (`capability_denied`)", "kind=capability_denied&n=200".to_owned()),
                (
                    "`alertname=DiskFull` + `since` (newest 10 %)",
                    format!("alertname=DiskFull&since={since}&n=200"),
                ),
                ("`contains=diskfull`", "contains=diskfull&n=200".to_owned()),
                ("`contains` absent text", "contains=no-such-text&n=200".to_owned()),
            ];
            for (name, query) in filters {
                let AuditQuery { filter, n } = AuditQuery::parse(Some(&query)).unwrap();
                let (found, scan) = median_of(5, || read_tail(&trail, &filter, n).unwrap().len());
                let request = get(addr, &format!("/audit?{query}"));
                let one = closed_loop(addr, &request, 1, duration).await;
                let (ten, rss) = with_peak_rss(closed_loop(addr, &request, 10, duration)).await;
                assert_eq!(one.errors + ten.errors, 0, "{query}");
                println!(
                    "| {events} | {name} | {found} | {} | {} | {} | {} | +{rss:.1} MiB |",
                    ms(scan),
                    ms(one.p50),
                    ms(ten.p50),
                    ms(ten.p99)
                );
            }
            if events == 1_000_000 {
                million = Some((addr, dir));
            }
        }
        println!(
            "\n| events in the trail | start (index built, plugins loaded) | RSS change at start | RSS growth, first 10-client burst |"
        );
        println!("|---|---|---|---|");
        for ((events, took, rss), (_, warm)) in starts.into_iter().zip(warmups) {
            println!("| {events} | {} | {rss:+.1} MiB | +{warm:.1} MiB |", ms(took));
        }

        let (addr, _dir) = million.unwrap();
        let poll = "/audit?n=200";
        println!(
            "\n`/alert` (cooldown skip, 10 connections) on the 1,000,000-event trail while clients poll `{poll}`:\n"
        );
        println!("| pollers | each polls | /alert req/s | / without pollers | polls/s | poll p50 |");
        println!("|---|---|---|---|---|---|");
        let mut without = None;
        for (pollers, paced) in [(0, None), (1, Some(POLLS_PER_SECOND)), (10, Some(POLLS_PER_SECOND)), (1, None), (10, None)] {
            let (alerts, polls) = alert_with_pollers(addr, poll, pollers, paced, duration).await;
            let base = *without.get_or_insert(alerts.rate());
            let each = match paced {
                _ if pollers == 0 => "–".to_owned(),
                Some(rate) => format!("{rate}/s"),
                None => "back to back".to_owned(),
            };
            println!(
                "| {pollers} | {each} | {:.0} | {:.2} | {:.0} | {} |",
                alerts.rate(),
                alerts.rate() / base,
                polls.rate(),
                ms(polls.p50)
            );
        }
    });
}
