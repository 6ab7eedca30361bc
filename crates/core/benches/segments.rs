//! `cargo bench -p autoheal-core --bench segments`: a trail rolled into
//! zstd segments — writing it through the writer (rotations included), the
//! start (open: recovery and the live file's index), a start-up look-back
//! over all of it (every event inside the horizon: the worst case), and
//! `GET /audit`'s reads across segments.
//!
//! EVENTS (default 1000000) events of about 250 bytes; MAX_BYTES (default
//! 33554432, 32 MiB) is `[audit] max_bytes`.

use std::ops::ControlFlow;
use std::time::Instant;

use autoheal_core::audit::{
    AuditFilter, AuditLog, FsyncPolicy, Rotation, list_segments, scan_backwards, total_bytes,
};
use autoheal_core::event::{EventBody, HostWarning, Warning};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn event(i: u64) -> EventBody {
    EventBody::HostWarning(HostWarning {
        detail: Some(format!(
            "alert {i:016x} of TcpEndpointDownFast has no annotation autoheal: \"true\", recorded and decided, never acted on; padding to a decision's size"
        )),
        ..HostWarning::bare(if i.is_multiple_of(100_000) {
            Warning::PluginsOverlap
        } else {
            Warning::HostStopping
        })
    })
}

fn main() {
    let events = env("EVENTS", 1_000_000);
    let max_bytes = env("MAX_BYTES", 32 << 20);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let rotation = Rotation {
        max_bytes: Some(max_bytes),
        keep_segments: 10_000,
        ..Rotation::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();

    let started = Instant::now();
    let (log, _) = AuditLog::open_with(&path, FsyncPolicy::Never, rotation.clone(), None).unwrap();
    let mut i = 0;
    while i < events {
        let batch: Vec<EventBody> = (i..(i + 1000).min(events)).map(event).collect();
        i += batch.len() as u64;
        log.emit_all(batch);
        if i.is_multiple_of(100_000) {
            runtime.block_on(log.flush()).unwrap();
        }
    }
    runtime.block_on(log.flush()).unwrap();
    let write = started.elapsed().as_secs_f64();
    drop(log);
    let segments = list_segments(&path).unwrap().len();
    let live = std::fs::metadata(&path).unwrap().len();
    let on_disk = total_bytes(&path).unwrap();
    println!(
        "{events} events written in {write:.1} s ({:.0}/s), {segments} rotations; {:.1} MiB on disk ({:.1} MiB live)",
        events as f64 / write,
        on_disk as f64 / (1 << 20) as f64,
        live as f64 / (1 << 20) as f64,
    );

    let started = Instant::now();
    let (log, recovery) = AuditLog::open_with(&path, FsyncPolicy::Never, rotation, None).unwrap();
    println!(
        "open (recovery, last id {}, the live file's index): {:.3} s",
        recovery.last_id,
        started.elapsed().as_secs_f64()
    );

    // The look-back of a start whose horizon covers every event: each line
    // looked at for its kind, as `remember` does.
    let started = Instant::now();
    let mut lines = 0u64;
    scan_backwards(&path, |line| {
        lines += u64::from(autoheal_core::audit::line_has_kind(line, &["action_ok"]));
        lines += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    println!(
        "look-back over all of it ({lines} lines): {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let timed = |what: &str, filter: AuditFilter| {
        let started = Instant::now();
        let found = log.read_tail(&filter, 200).unwrap();
        println!(
            "GET /audit {what}: {} events in {:.3} s",
            found.len(),
            started.elapsed().as_secs_f64()
        );
    };
    timed("(newest 200)", AuditFilter::default());
    // One in 100,000: the read goes through every segment.
    timed(
        "?kind=host_warning&contains=plugins_overlap (rare: every segment)",
        AuditFilter {
            kinds: vec!["host_warning".into()],
            contains: Some("plugins_overlap".into()),
            ..AuditFilter::default()
        },
    );
    timed(
        "?contains=plugins_overlap (rare, no index: every segment)",
        AuditFilter {
            contains: Some("plugins_overlap".into()),
            ..AuditFilter::default()
        },
    );

    let started = Instant::now();
    let mut reader = log.read_after(0).unwrap();
    let mut read = 0;
    loop {
        let batch = reader.next_batch(2000, 1 << 20).unwrap();
        if batch.is_empty() {
            break;
        }
        read += batch.lines().count();
    }
    println!(
        "GET /events catch-up from id 0: {read} lines in {:.2} s",
        started.elapsed().as_secs_f64()
    );
}
