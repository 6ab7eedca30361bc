//! `cargo bench -p autoheal-core --bench forward`: the read of a
//! `GET /events` catch-up from the start of a trail (`Last-Event-ID: 0`),
//! as it was (each batch of 2,000 found by reading the trail from its end:
//! quadratic) and as it is (the forward reader: linear), in this process,
//! each line parsed as an `Event` as the catch-up does. The whole catch-up
//! through the server is the host's `catchup` bench.
//!
//! OLD_EVENTS (default 16000,32000,64000) and NEW_EVENTS (default the same
//! and 1000000), comma-separated, set the trails.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use autoheal_core::audit::{AuditLog, FsyncPolicy, scan_backwards};
use autoheal_core::event::Event;

/// The first event's `ts`; each next one is 1 ms later.
const FIRST_TS: f64 = 1_796_000_000.0;
/// The catch-up's batch, as in `host/src/http/events.rs`.
const REPLAY_BATCH: usize = 2_000;

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

/// The catch-up's read before: each batch is the oldest [`REPLAY_BATCH`]
/// events after the last one sent, found by reading from the end.
fn old_catch_up(path: &Path) -> u64 {
    let mut after = 0;
    let mut read = 0;
    loop {
        let mut window = std::collections::VecDeque::with_capacity(REPLAY_BATCH);
        let mut more = false;
        scan_backwards(path, |line| {
            let Ok(event) = serde_json::from_slice::<Event>(line) else {
                return ControlFlow::Continue(());
            };
            if event.id <= after {
                return ControlFlow::Break(());
            }
            if window.len() == REPLAY_BATCH {
                window.pop_front();
                more = true;
            }
            window.push_back((event, String::from_utf8_lossy(line).into_owned()));
            ControlFlow::Continue(())
        })
        .unwrap();
        read += window.len() as u64;
        after = window.front().map_or(after, |(event, _)| event.id);
        if !more {
            return read;
        }
    }
}

/// The catch-up's read now: the forward reader, each line parsed as the
/// catch-up parses it.
fn new_catch_up(audit: &AuditLog) -> u64 {
    let mut reader = audit.read_after(0).unwrap();
    let mut read = 0;
    loop {
        let batch = reader.next_batch(REPLAY_BATCH, 1024 * 1024).unwrap();
        if batch.is_empty() {
            return read;
        }
        for line in batch.lines() {
            let event: Event = serde_json::from_slice(line).unwrap();
            let _json = String::from_utf8_lossy(line);
            read += u64::from(event.id > 0);
        }
    }
}

/// Wall and CPU seconds of `f` in this process.
fn measured(f: impl FnOnce() -> u64) -> (u64, f64, f64) {
    let (cpu, started) = (cpu_secs("self"), Instant::now());
    let found = f();
    (found, started.elapsed().as_secs_f64(), cpu_secs("self") - cpu)
}

fn env_list(name: &str, default: &[u64]) -> Vec<u64> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').map(|n| n.trim().parse().unwrap()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn main() {
    println!("| events | before: each batch read from the end | CPU | now: forward reader | CPU |");
    println!("|---|---|---|---|---|");
    let old = env_list("OLD_EVENTS", &[16_000, 32_000, 64_000]);
    let mut sizes = env_list("NEW_EVENTS", &[16_000, 32_000, 64_000, 1_000_000]);
    let missing: Vec<u64> = old.iter().copied().filter(|n| !sizes.contains(n)).collect();
    sizes.extend(missing);
    for events in sizes {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        trail(&path, events);
        let before = if old.contains(&events) {
            let (read, wall, cpu) = measured(|| old_catch_up(&path));
            assert_eq!(read, events);
            (format!("{wall:.2} s"), format!("{cpu:.2} CPU-s"))
        } else {
            ("–".to_owned(), "–".to_owned())
        };
        let (audit, _) = AuditLog::open(&path, FsyncPolicy::Never, None).unwrap();
        let (read, wall, cpu) = measured(|| new_catch_up(&audit));
        assert_eq!(read, events);
        println!(
            "| {events} | {} | {} | {wall:.3} s | {cpu:.3} CPU-s |",
            before.0, before.1
        );
    }
}
