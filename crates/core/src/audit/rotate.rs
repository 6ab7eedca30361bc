//! Rolling the live file into segment 1 and keeping the segments within
//! their bounds, in steps that are each atomic, so that a crash at any
//! step loses no event and the next start finds a trail it reads (see
//! [`finish_interrupted`]):
//!
//! 1. the live file is written to `audit.rolling.jsonl.tmp` (compressed)
//!    and fsynced — a crash leaves the temporary file, which is removed;
//! 2. an empty `audit.fresh.jsonl.tmp` is made and fsynced;
//! 3. under the gate: segments past `keep_segments` are removed, the rest
//!    renumbered (highest first, each a rename: a crash leaves a gap in the
//!    numbers, which readers allow), the temporary segment renamed to
//!    `audit.1.jsonl.zst`, then the fresh file renamed over the live one,
//!    and the directory fsynced — a crash between the last two renames
//!    leaves the live file's lines in segment 1 too, and the next start
//!    empties the live file (its ids are all in segment 1);
//! 4. segments past `keep_bytes` or `keep_age` are removed, oldest first.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::index::AuditIndex;
use super::segments::{self, Segment};
use crate::event::AuditRotated;

/// When the live file rolls, and which rolled segments are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    /// Roll the live file once it passes this many bytes (`None`: never by size).
    pub max_bytes: Option<u64>,
    /// Roll the live file once its first event is older than this
    /// (checked when an event is written; `None`: never by age).
    pub max_age: Option<Duration>,
    /// Rolled segments kept (the oldest beyond it are removed); at least 1.
    pub keep_segments: u32,
    /// Bytes of rolled segments kept in all (`None`: no bound).
    pub keep_bytes: Option<u64>,
    /// Rolled segments kept while younger than this (`None`: no bound).
    pub keep_age: Option<Duration>,
    /// zstd-compress rolled segments.
    pub compress: bool,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            max_bytes: Some(256 * 1024 * 1024),
            max_age: None,
            keep_segments: 10,
            keep_bytes: None,
            keep_age: None,
            compress: true,
        }
    }
}

impl Rotation {
    /// Never roll (a trail that only grows, as before rotation existed).
    pub const NEVER: Rotation = Rotation {
        max_bytes: None,
        max_age: None,
        keep_segments: u32::MAX,
        keep_bytes: None,
        keep_age: None,
        compress: true,
    };

    /// Why a live file of `len` bytes whose first event is `age` old rolls now, if it does.
    pub(super) fn due(&self, len: u64, age: Duration) -> Option<&'static str> {
        if len == 0 {
            return None;
        }
        if self.max_bytes.is_some_and(|max| len >= max) {
            return Some("max_bytes");
        }
        if self.max_age.is_some_and(|max| age >= max) {
            return Some("max_age");
        }
        None
    }
}

/// A test hook: `AUTOHEAL_TEST_ROTATION_CRASH=<step>` aborts the process at
/// that step of a rotation, as a power cut or `kill -9` would, so that a
/// test proves every step leaves a trail the next start reads.
fn crash_point(step: &str) {
    if std::env::var("AUTOHEAL_TEST_ROTATION_CRASH").is_ok_and(|at| at == step) {
        eprintln!("AUTOHEAL_TEST_ROTATION_CRASH: aborting at {step}");
        std::process::abort();
    }
}

/// The steps `crash_point` knows, in order.
pub const ROTATION_STEPS: &[&str] = &[
    "segment_written",
    "pruned",
    "renumbered",
    "segment_placed",
    "live_replaced",
];

/// Rolls the first `len` bytes of the live file (all of it: the writer is
/// not appending) into segment 1 and applies retention; returns the new,
/// empty live file opened for appending, and what was done.
pub(super) fn rotate(
    live: &Path,
    current: &File,
    len: u64,
    rotation: &Rotation,
    reason: &str,
    index: &AuditIndex,
) -> io::Result<(File, AuditRotated)> {
    let rolling = segments::rolling_path(live);
    let written = match segments::write_segment(current, len, &rolling, rotation.compress) {
        Ok(written) => written,
        Err(e) => {
            // A full disk, most likely: the live file is untouched.
            let _ = std::fs::remove_file(&rolling);
            return Err(e);
        }
    };
    crash_point("segment_written");
    let fresh = segments::fresh_live_path(live);
    File::create(&fresh)?.sync_all()?;
    let segment = segments::segment_path(live, 1, rotation.compress);
    let mut removed = Vec::new();
    {
        let _gate = segments::gate_write();
        let existing = segments::list(live)?;
        // Highest first: each rename frees the number the next one takes.
        for old in existing.iter().rev() {
            if old.number >= rotation.keep_segments {
                remove(old, &mut removed)?;
            }
        }
        crash_point("pruned");
        for old in existing
            .iter()
            .rev()
            .filter(|s| s.number < rotation.keep_segments)
        {
            std::fs::rename(
                &old.path,
                segments::segment_path(live, old.number + 1, old.compressed),
            )?;
        }
        crash_point("renumbered");
        std::fs::rename(&rolling, &segment)?;
        crash_point("segment_placed");
        std::fs::rename(&fresh, live)?;
        crash_point("live_replaced");
        segments::sync_dir(live)?;
        index.reset();
    }
    retain(live, rotation, &mut removed)?;
    // Read too: the next rotation compresses it from this handle.
    let file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(live)?;
    Ok((
        file,
        AuditRotated {
            segment: file_name(&segment),
            bytes: len,
            segment_bytes: written.bytes,
            events: written.lines,
            reason: reason.to_owned(),
            removed,
        },
    ))
}

/// Removes the oldest segments past `keep_bytes` and those older than `keep_age`.
fn retain(live: &Path, rotation: &Rotation, removed: &mut Vec<String>) -> io::Result<()> {
    if rotation.keep_bytes.is_none() && rotation.keep_age.is_none() {
        return Ok(());
    }
    let now = SystemTime::now();
    let mut kept_bytes = 0u64;
    // Newest first: the newest are kept while the bound allows.
    let mut doomed = Vec::new();
    for segment in segments::list(live)? {
        let meta = match std::fs::metadata(&segment.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        kept_bytes += meta.len();
        // A segment's last write is when it was rolled: its newest event.
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        let too_big = rotation.keep_bytes.is_some_and(|max| kept_bytes > max);
        let too_old = rotation.keep_age.is_some_and(|max| age > max);
        if too_big || too_old {
            doomed.push(segment);
        }
    }
    for segment in doomed.iter().rev() {
        remove(segment, removed)?;
    }
    Ok(())
}

fn remove(segment: &Segment, removed: &mut Vec<String>) -> io::Result<()> {
    match std::fs::remove_file(&segment.path) {
        Ok(()) => {
            removed.push(file_name(&segment.path));
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// At start, before anything reads or writes: finishes or undoes a rotation
/// a crash cut short. Temporary files are removed (the live file was not
/// replaced yet, so it still holds their lines), and a live file whose
/// events are all in segment 1 already (the crash came between placing the
/// segment and replacing the live file) is emptied. True if it did either.
pub(super) fn finish_interrupted(live: &Path) -> io::Result<bool> {
    let mut did = false;
    for temporary in [segments::rolling_path(live), segments::fresh_live_path(live)] {
        match std::fs::remove_file(&temporary) {
            Ok(()) => did = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let Some(newest) = segments::list(live)?.into_iter().next() else {
        return Ok(did);
    };
    let Some(live_last) = live_last_id(live)? else {
        return Ok(did);
    };
    let segment = segments::open_all(live)?.into_iter().next();
    let segment_last = match segment {
        Some(segment) => {
            let mut last = None;
            let _ = segment.regions_backwards(&mut |region| last_id_in(region, &mut last))?;
            last
        }
        None => None,
    };
    if segment_last.is_some_and(|segment_last| live_last <= segment_last) {
        tracing::warn!(
            segment = %newest.path.display(),
            "a rotation was cut short after its segment was placed: the live file's events are all in it, so the live file is emptied"
        );
        let fresh = segments::fresh_live_path(live);
        File::create(&fresh)?.sync_all()?;
        std::fs::rename(&fresh, live)?;
        segments::sync_dir(live)?;
        did = true;
    }
    Ok(did)
}

/// Reading regions from the end: the last id of `region`, if it has one,
/// into `last`, which ends the read.
fn last_id_in(region: &[u8], last: &mut Option<u64>) -> std::ops::ControlFlow<()> {
    *last = region
        .strip_suffix(b"\n")
        .unwrap_or(region)
        .rsplit(|&b| b == b'\n')
        .find_map(id_of);
    if last.is_some() {
        std::ops::ControlFlow::Break(())
    } else {
        std::ops::ControlFlow::Continue(())
    }
}

fn id_of(line: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: u64,
    }
    serde_json::from_slice::<IdOnly>(line).ok().map(|l| l.id)
}

/// The last id of the live file alone.
fn live_last_id(live: &Path) -> io::Result<Option<u64>> {
    let Some(file) = super::reader::open_if_exists(live)? else {
        return Ok(None);
    };
    let mut last = None;
    let _ = super::reader::file_regions_backwards(&file, &mut |region| last_id_in(region, &mut last))?;
    Ok(last)
}

/// The time of the live file's first event (when it began), if it has one.
pub(super) fn first_ts(live: &Path) -> Option<f64> {
    use std::io::Read;
    let mut file = File::open(live).ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    let read = file.read(&mut buf).ok()?;
    let first = buf[..read].split(|&b| b == b'\n').next()?;
    super::reader::line_ts(first)
}
