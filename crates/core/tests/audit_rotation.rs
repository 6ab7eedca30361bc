//! The trail rolls into numbered, compressed segments, and every reader —
//! `GET /audit`'s tail (index and scan), the `GET /events` catch-up, the
//! start-up look-back — reads across them; ids keep increasing across a
//! rollover and a restart; a rotation a crash cut short is finished at the
//! next start with nothing lost and nothing twice.

use std::ops::ControlFlow;
use std::path::Path;

use autoheal_core::audit::{
    AuditFilter, AuditLog, FsyncPolicy, Rotation, list_segments, read_tail, scan_backwards, segment_path,
};
use autoheal_core::event::{EventBody, HostWarning, Warning};
use serde_json::Value;

fn rotation(max_bytes: u64, keep_segments: u32) -> Rotation {
    Rotation {
        max_bytes: Some(max_bytes),
        keep_segments,
        ..Rotation::default()
    }
}

fn warning(i: usize) -> EventBody {
    EventBody::HostWarning(HostWarning {
        detail: Some(format!("event number {i} with some padding to fill the trail")),
        ..HostWarning::bare(Warning::HostStopping)
    })
}

/// Every id the trail holds, as a scan from the end reads them, oldest first.
fn scanned_ids(path: &Path) -> Vec<u64> {
    let mut ids = Vec::new();
    scan_backwards(path, |line| {
        let event: Value = serde_json::from_slice(line).unwrap();
        ids.push(event["id"].as_u64().unwrap());
        ControlFlow::Continue(())
    })
    .unwrap();
    ids.reverse();
    ids
}

/// `ids` is every id from `from` to `to` once, in order (said briefly when not).
#[track_caller]
fn assert_run(ids: &[u64], from: u64, to: u64, what: &str) {
    let expected: Vec<u64> = (from..=to).collect();
    assert!(
        ids == expected,
        "{what}: {} ids, first {:?}, last {:?}; expected {from}..={to}",
        ids.len(),
        ids.first(),
        ids.last()
    );
}

fn ids_of(events: &[Box<serde_json::value::RawValue>]) -> Vec<u64> {
    events
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e.get()).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

fn forward_ids(log: &AuditLog, after: u64) -> Vec<u64> {
    let mut reader = log.read_after(after).unwrap();
    let mut ids = Vec::new();
    loop {
        let batch = reader.next_batch(333, 64 * 1024).unwrap();
        if batch.is_empty() {
            return ids;
        }
        ids.extend(batch.lines().map(|l| {
            serde_json::from_slice::<Value>(l).unwrap()["id"]
                .as_u64()
                .unwrap()
        }));
    }
}

fn write(log: &AuditLog, from: usize, count: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for i in from..from + count {
        log.emit(warning(i));
        if i % 50 == 0 {
            // Commits of several sizes, so that rotations fall between them.
            runtime.block_on(log.flush()).unwrap();
        }
    }
    runtime.block_on(log.flush()).unwrap();
}

#[test]
fn readers_see_every_event_across_segments_and_ids_go_on_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (log, _) = AuditLog::open_with(&path, FsyncPolicy::Never, rotation(20_000, 100), None).unwrap();
    write(&log, 0, 3000);
    // The last rotation's `audit_rotated` is queued after the flush.
    write(&log, 0, 0);
    let segments = list_segments(&path).unwrap();
    assert!(segments.len() >= 5, "{} segments", segments.len());
    assert!(segments.iter().all(|s| s.compressed));
    assert_eq!(segments[0].path, segment_path(&path, 1, true));

    let all = scanned_ids(&path);
    let last = *all.last().unwrap();
    assert_run(&all, 1, last, "every id once, in order, across segments");
    let rotated = read_tail(
        &path,
        &AuditFilter {
            kinds: vec!["audit_rotated".into()],
            ..AuditFilter::default()
        },
        1000,
    )
    .unwrap();
    assert_eq!(rotated.len(), segments.len(), "one audit_rotated per rotation");
    assert_eq!(rotated[0]["segment"], "audit.1.jsonl.zst");
    assert!(rotated[0]["events"].as_u64().unwrap() > 10);
    assert_eq!(rotated[0]["reason"], "max_bytes");

    // The tail through the index (a kind) and by a scan (no filter) read
    // back past the live file.
    let by_kind = AuditFilter {
        kinds: vec!["host_warning".into()],
        ..AuditFilter::default()
    };
    let tail = log.read_tail(&by_kind, 5000).unwrap();
    assert_eq!(ids_of(&tail).len(), 3000);
    assert_run(
        &ids_of(&log.read_tail(&AuditFilter::default(), 5000).unwrap()),
        1,
        last,
        "tail by scan",
    );
    // A `since` older than the live file still answers.
    let first: Value = serde_json::from_str(tail[0].get()).unwrap();
    let since = AuditFilter {
        since: Some(first["ts"].as_f64().unwrap()),
        kinds: vec!["host_warning".into()],
        ..AuditFilter::default()
    };
    assert_eq!(log.read_tail(&since, 5000).unwrap().len(), 3000);

    // Catching up from any id reads every later one, once, in order.
    for after in [0, 1, 17, last / 3, last / 2, last - 1, last] {
        assert_run(
            &forward_ids(&log, after),
            after + 1,
            last,
            &format!("after {after}"),
        );
    }

    // A rotation while a catch-up is half way: it goes on from the segment.
    let mut reader = log.read_after(0).unwrap();
    let mut seen: Vec<u64> = Vec::new();
    let first_batch = reader.next_batch(100, 1 << 20).unwrap();
    seen.extend(first_batch.lines().map(|l| {
        serde_json::from_slice::<Value>(l).unwrap()["id"]
            .as_u64()
            .unwrap()
    }));
    write(&log, 3000, 500);
    loop {
        let batch = reader.next_batch(100, 1 << 20).unwrap();
        if batch.is_empty() {
            break;
        }
        seen.extend(batch.lines().map(|l| {
            serde_json::from_slice::<Value>(l).unwrap()["id"]
                .as_u64()
                .unwrap()
        }));
    }
    let last = *scanned_ids(&path).last().unwrap();
    assert_run(&seen, 1, last, "a catch-up across a rotation");

    // Ids go on after a restart, also when the live file is empty (just
    // rolled): from the newest segment's last.
    drop(log);
    std::fs::write(&path, "").unwrap();
    let last = *scanned_ids(&path).last().unwrap();
    assert_eq!(
        list_segments(&path).unwrap()[0].path,
        segment_path(&path, 1, true)
    );
    let (log, recovery) =
        AuditLog::open_with(&path, FsyncPolicy::Never, rotation(20_000, 100), None).unwrap();
    assert_eq!(recovery.last_id, last);
    assert_eq!(log.emit(warning(0)).id, last + 1);
}

#[test]
fn retention_keeps_the_newest_segments_and_says_what_it_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (log, _) = AuditLog::open_with(&path, FsyncPolicy::Never, rotation(10_000, 3), None).unwrap();
    write(&log, 0, 2000);
    write(&log, 0, 0);
    let numbers: Vec<u32> = list_segments(&path).unwrap().iter().map(|s| s.number).collect();
    assert_eq!(numbers, [1, 2, 3]);
    let rotated = read_tail(
        &path,
        &AuditFilter {
            kinds: vec!["audit_rotated".into()],
            ..AuditFilter::default()
        },
        10,
    )
    .unwrap();
    assert_eq!(
        rotated.last().unwrap()["removed"],
        serde_json::json!(["audit.3.jsonl.zst"])
    );
    // What is kept is the newest, without a gap.
    let ids = scanned_ids(&path);
    let last = *ids.last().unwrap();
    assert_run(&ids, ids[0], last, "kept");
    drop(log);

    // keep_bytes: the oldest go first until the segments fit.
    let keep_bytes = Rotation {
        keep_bytes: Some(2_500),
        ..rotation(10_000, 100)
    };
    let (log, _) = AuditLog::open_with(&path, FsyncPolicy::Never, keep_bytes, None).unwrap();
    write(&log, 2000, 1000);
    let sizes: u64 = list_segments(&path)
        .unwrap()
        .iter()
        .map(|s| std::fs::metadata(&s.path).unwrap().len())
        .sum();
    assert!(sizes <= 2_500, "{sizes} bytes of segments kept");
}

/// The files a rotation leaves when a crash cuts it short at each step (as
/// `rotate` makes them), and the next start: every event once, in order.
#[test]
fn a_rotation_cut_short_at_any_step_loses_nothing_at_the_next_start() {
    for step in ["segment_written", "segment_placed"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (log, _) = AuditLog::open_with(&path, FsyncPolicy::Never, Rotation::NEVER, None).unwrap();
        write(&log, 0, 200);
        drop(log);
        let live = std::fs::read(&path).unwrap();
        let compressed = zstd::bulk::compress(&live, 3).unwrap();
        match step {
            // The segment is written to its temporary name, not placed.
            "segment_written" => {
                std::fs::write(dir.path().join("audit.rolling.jsonl.tmp"), &compressed).unwrap()
            }
            // Placed as segment 1, the live file not replaced yet.
            _ => {
                std::fs::write(segment_path(&path, 1, true), &compressed).unwrap();
                std::fs::write(dir.path().join("audit.fresh.jsonl.tmp"), "").unwrap();
            }
        }
        let (log, recovery) = AuditLog::open_with(&path, FsyncPolicy::Never, Rotation::NEVER, None).unwrap();
        assert!(recovery.finished_rotation, "{step}");
        assert_run(&scanned_ids(&path), 1, 200, step);
        assert_eq!(log.emit(warning(0)).id, 201, "{step}");
        let leftovers: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{step}: {leftovers:?}");
    }
}

/// `logrotate copytruncate` is not supported, but a live file cut short
/// under the writer is detected: the index starts again, so `GET /audit`
/// answers with the lines written since (not offsets into lines gone).
#[test]
fn a_live_file_cut_short_under_the_writer_is_detected_and_the_index_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (log, _) = AuditLog::open_with(&path, FsyncPolicy::Never, Rotation::NEVER, None).unwrap();
    write(&log, 0, 300);
    // What copytruncate does: copy, then truncate in place.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    // As many lines again, so that the old offsets fall inside new lines.
    write(&log, 300, 300);
    let by_kind = AuditFilter {
        kinds: vec!["host_warning".into()],
        ..AuditFilter::default()
    };
    let ids = ids_of(&log.read_tail(&by_kind, 5000).unwrap());
    assert_run(
        &ids,
        301,
        600,
        "the lines written after the cut, through the index",
    );
    assert_run(&forward_ids(&log, 0), 301, 600, "a catch-up after the cut");
}
