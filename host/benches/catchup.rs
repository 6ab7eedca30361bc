//! `GET /events` catch-up (`Last-Event-ID: 0`) on a long trail, recorded
//! in BENCHMARKS.md.
//!
//! Writes a trail of EVENTS events (default 1,000,000), starts the real
//! `autoheal` binary on it (default `max_concurrent_audit_reads`, 2), and
//! has 1 then 10 clients replay the whole trail at once: the wall time until
//! every client has every event, and the host's CPU time for it (from
//! `/proc`). Each client checks that it got every id once, in order.
//! The read alone, before and after, is `autoheal-core`'s `forward` bench.
//!
//! Run: `cargo bench -p autoheal --bench catchup` (EVENTS, comma-separated,
//! sets the trails).

#[allow(dead_code)] // each bench uses some of the shared helpers
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// The first event's `ts`; each next one is 1 ms later.
const FIRST_TS: f64 = 1_796_000_000.0;

/// `events` `decision_skip` events, ids 1..=events, as the host writes them.
fn trail(path: &Path, events: u64) {
    let mut text = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..events {
        writeln!(
            text,
            r#"{{"alertname":"TcpEndpointDownFast","detail":"alert has no annotation autoheal: \"true\"","fingerprint":"{i:016x}","id":{id},"kind":"decision_skip","reason":"not_annotated","status":"firing","ts":{ts}}}"#,
            id = i + 1,
            ts = FIRST_TS + i as f64 / 1000.0
        )
        .unwrap();
    }
    text.flush().unwrap();
}

/// CPU seconds (user + system) used so far by process `pid` ("self": this one).
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let per_sec = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0);
    ticks / per_sec
}

/// One client: `Last-Event-ID: 0`, until event `last`; checks every id
/// from 1 comes once, in order.
fn replay_all(addr: &str, last: u64) -> Duration {
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nLast-Event-ID: 0\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    let mut line = Vec::with_capacity(4096);
    let mut expected = 1;
    while expected <= last {
        line.clear();
        assert!(
            reader.read_until(b'\n', &mut line).unwrap() > 0,
            "stream closed at {expected}"
        );
        let Some(id) = line.strip_prefix(b"id: ") else {
            continue;
        };
        let id: u64 = std::str::from_utf8(id).unwrap().trim().parse().unwrap();
        assert_eq!(id, expected, "ids once, in order");
        expected += 1;
    }
    started.elapsed()
}

fn env_list(name: &str, default: &[u64]) -> Vec<u64> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').map(|n| n.trim().parse().unwrap()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn served(events: u64) {
    let dir = tempfile::tempdir().unwrap();
    trail(&dir.path().join("audit.jsonl"), events);
    let (mut host, addr) = common::serve_process(dir.path(), |_| {});
    let pid = host.id().to_string();
    println!("| events | clients | all caught up (wall) | slowest client | host CPU | host CPU per client |");
    println!("|---|---|---|---|---|---|");
    for clients in [1u64, 10] {
        let cpu = cpu_secs(&pid);
        let started = Instant::now();
        let runs: Vec<_> = (0..clients)
            .map(|_| {
                let addr = addr.clone();
                std::thread::spawn(move || replay_all(&addr, events))
            })
            .collect();
        let slowest = runs.into_iter().map(|r| r.join().unwrap()).max().unwrap();
        let wall = started.elapsed().as_secs_f64();
        let used = cpu_secs(&pid) - cpu;
        println!(
            "| {events} | {clients} | {wall:.2} s | {:.2} s | {used:.2} CPU-s | {:.2} CPU-s |",
            slowest.as_secs_f64(),
            used / clients as f64
        );
    }
    let _ = host.kill();
    let _ = host.wait();
}

fn main() {
    for events in env_list("EVENTS", &[1_000_000]) {
        served(events);
    }
}
