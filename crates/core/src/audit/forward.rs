//! Reading the trail forward from an event id, for a subscriber that
//! catches up (`GET /events` with `Last-Event-ID`, or after it lagged).
//!
//! The first line after the id is found once, by a binary search over the
//! index's lines (ids are in file order), and each batch then continues
//! where the last one ended: catching up on N events reads each line once
//! and the search reads O(log N) lines, where reading each batch from the
//! end of the file again cost a scan of the trail per batch.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::ops::{ControlFlow, Range};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::index::AuditIndex;
use super::reader::open_if_exists;
use super::segments::{self, OpenSegment, SegmentCursor};

/// The committed lines after an event id, read forward in batches: first
/// from the rolled segments that hold ids after it (oldest first), then
/// from the live file through its index.
pub struct ForwardReader {
    path: PathBuf,
    index: Arc<AuditIndex>,
    /// Rolled segments still to read, oldest first.
    rolled: VecDeque<OpenSegment>,
    /// The one being read.
    cursor: Option<SegmentCursor>,
    /// Whole lines of a segment region not handed out yet, and where the
    /// next one starts.
    region: Vec<u8>,
    region_at: usize,
    /// Segment lines with ids up to this are passed over (the first
    /// segment read also holds lines before `after`).
    skip_through: u64,
    /// The live file as opened, and the index generation it goes with;
    /// `None` until the segments are read, or when there is no trail yet.
    live: Option<File>,
    generation: u64,
    /// The next line to read, as a position in the index.
    next: usize,
    /// The highest id handed out so far (or the `after` asked for): where a
    /// reader whose live file rolled under it goes on from.
    last_id: u64,
    /// The spans of the lines a batch looks at (reused).
    spans: Vec<(u64, u64)>,
}

/// Lines read by one [`ForwardReader::next_batch`], oldest first, each
/// without its newline.
#[derive(Default)]
pub struct ForwardBatch {
    bytes: Vec<u8>,
    lines: Vec<Range<usize>>,
}

impl ForwardBatch {
    /// The lines, oldest first (empty lines are left out).
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.lines.iter().map(|range| &self.bytes[range.clone()])
    }

    /// No line: every line indexed when the batch was asked for has been read.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    fn push(&mut self, line: &[u8]) {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(line);
        self.lines.push(at..at + line.len());
    }

    /// The id of the newest line that has one.
    fn last_id(&self) -> Option<u64> {
        self.lines
            .iter()
            .rev()
            .find_map(|range| id_of_line(&self.bytes[range.clone()]))
    }
}

/// The `id` of an event line, read without the rest of the event.
#[derive(serde::Deserialize)]
struct IdOnly {
    id: u64,
}

fn id_of_line(line: &[u8]) -> Option<u64> {
    serde_json::from_slice::<IdOnly>(line).ok().map(|line| line.id)
}

/// The first (or last) id of a segment, read from its first (last) region.
fn segment_edge_id(segment: &OpenSegment, first: bool) -> io::Result<Option<u64>> {
    let mut found = None;
    let mut visit = |region: &[u8]| {
        let lines = region
            .strip_suffix(b"\n")
            .unwrap_or(region)
            .split(|&b| b == b'\n');
        found = if first {
            lines.filter_map(id_of_line).next()
        } else {
            lines.rev().find_map(id_of_line)
        };
        if found.is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    if first {
        let _ = segment.regions_forward(&mut visit)?;
    } else {
        let _ = segment.regions_backwards(&mut visit)?;
    }
    Ok(found)
}

impl ForwardReader {
    /// A reader positioned at the first line whose event has an id above
    /// `after` (lines without an id, such as the original system's, are
    /// passed over by the search: they are not events anyone resumes from).
    /// Blocking: it reads a few lines of the file, and the edges of the
    /// rolled segments when `after` is older than the live file.
    pub(super) fn after(path: &Path, index: Arc<AuditIndex>, after: u64) -> io::Result<Self> {
        let (live, all_segments, generation) = {
            let _gate = segments::gate_read();
            (
                open_if_exists(path)?,
                segments::open_all(path)?,
                index.generation(),
            )
        };
        let mut reader = Self {
            path: path.to_owned(),
            index,
            rolled: VecDeque::new(),
            cursor: None,
            region: Vec::new(),
            region_at: 0,
            skip_through: after,
            live,
            generation,
            next: 0,
            last_id: after,
            spans: Vec::new(),
        };
        // The live file's first id: only if it is past `after + 1` can
        // the segments hold ids after `after`.
        let first_live = reader.first_id_from(0)?.unwrap_or(u64::MAX);
        if first_live > after.saturating_add(1) {
            for segment in all_segments {
                if segment_edge_id(&segment, false)?.is_none_or(|last| last <= after) {
                    break;
                }
                let starts_before = segment_edge_id(&segment, true)?.is_some_and(|first| first <= after + 1);
                reader.rolled.push_front(segment);
                if starts_before {
                    break;
                }
            }
        }
        if reader.rolled.is_empty() {
            reader.next = reader.first_line_after(after)?;
        }
        Ok(reader)
    }

    /// The id of the first line from `from` on that has one.
    fn first_id_from(&mut self, from: usize) -> io::Result<Option<u64>> {
        let count = self.index.line_count();
        for i in from..count.min(from + 64) {
            if let Some(id) = self.id_of(i)? {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// The position of the first line with an id above `after`. Invariant:
    /// every line with an id before `lo` has an id at most `after`, every
    /// one from `hi` on an id above it.
    fn first_line_after(&mut self, after: u64) -> io::Result<usize> {
        let (mut lo, mut hi) = (0, self.index.line_count());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            // The first line from `mid` that has an id: on a damaged or
            // mixed trail a probe may step over lines without one.
            let mut probe = mid;
            let found = loop {
                if probe == hi {
                    break None;
                }
                if let Some(id) = self.id_of(probe)? {
                    break Some(id);
                }
                probe += 1;
            };
            match found {
                // `mid..hi` holds no id: nothing there to resume from.
                None => hi = mid,
                Some(id) if id <= after => lo = probe + 1,
                Some(_) => hi = mid,
            }
        }
        Ok(lo)
    }

    /// The id of the event on line `i`, if it has one.
    fn id_of(&mut self, i: usize) -> io::Result<Option<u64>> {
        let mut batch = ForwardBatch::default();
        self.read(i, 1, usize::MAX, &mut batch)?;
        Ok(batch.lines().next().and_then(id_of_line))
    }

    /// The next lines, oldest first: at most `max_lines`, and at most
    /// `max_bytes` of them unless a single line is longer. Empty once every
    /// line indexed so far has been read (lines committed later are read by
    /// a later call). Blocking.
    pub fn next_batch(&mut self, max_lines: usize, max_bytes: usize) -> io::Result<ForwardBatch> {
        let mut batch = ForwardBatch::default();
        let max_lines = max_lines.max(1);
        if !self.rolled.is_empty() || self.cursor.is_some() || self.region_at < self.region.len() {
            self.rolled_batch(max_lines, max_bytes, &mut batch)?;
            if !batch.is_empty() {
                if let Some(id) = batch.last_id() {
                    self.last_id = self.last_id.max(id);
                }
                return Ok(batch);
            }
            // The segments are read: on to the live file, after what they held.
            self.next = self.first_line_after(self.last_id)?;
        }
        // Lines that hold nothing (empty, cut short) are stepped over, so an
        // empty batch always means the end.
        while batch.is_empty() {
            let read = self.read(self.next, max_lines, max_bytes, &mut batch)?;
            if read == 0 {
                if self.index.generation() != self.generation {
                    // The live file rolled under this reader: what it had
                    // not read is in the newest segment now.
                    *self = Self::after(&self.path, self.index.clone(), self.last_id)?;
                    return self.next_batch(max_lines, max_bytes);
                }
                break;
            }
            self.next += read;
        }
        if let Some(id) = batch.last_id() {
            self.last_id = self.last_id.max(id);
        }
        Ok(batch)
    }

    /// Lines of the rolled segments into `batch`, as [`Self::next_batch`].
    fn rolled_batch(
        &mut self,
        max_lines: usize,
        max_bytes: usize,
        batch: &mut ForwardBatch,
    ) -> io::Result<()> {
        loop {
            while self.region_at < self.region.len() {
                let rest = &self.region[self.region_at..];
                let len = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                if !batch.is_empty()
                    && (batch.lines.len() >= max_lines || batch.bytes.len() + len > max_bytes)
                {
                    return Ok(());
                }
                let line = &rest[..len];
                self.region_at += len + 1;
                if line.is_empty() {
                    continue;
                }
                if self.skip_through > 0 {
                    match id_of_line(line) {
                        Some(id) if id <= self.skip_through => continue,
                        Some(_) => self.skip_through = 0,
                        None => continue,
                    }
                }
                batch.push(line);
            }
            // The next region: of the segment being read, else of the next one.
            self.region.clear();
            self.region_at = 0;
            if let Some(cursor) = &mut self.cursor
                && let Some(region) = cursor.next_region()?
            {
                self.region = region;
                continue;
            }
            self.cursor = None;
            match self.rolled.pop_front() {
                Some(segment) => self.cursor = Some(segment.cursor()?),
                None => return Ok(()),
            }
        }
    }

    /// Reads up to `max_lines` lines from line `from` into `batch` with one
    /// `pread`; how many lines it went past (0 at the end of the trail, or
    /// when the live file rolled since the reader opened it).
    fn read(
        &mut self,
        from: usize,
        max_lines: usize,
        max_bytes: usize,
        batch: &mut ForwardBatch,
    ) -> io::Result<usize> {
        let Some(file) = &self.live else {
            return Ok(0);
        };
        self.spans.clear();
        if !self.index.spans(
            self.generation,
            from,
            from.saturating_add(max_lines),
            &mut self.spans,
        ) {
            return Ok(0);
        }
        let Some(&(start, _)) = self.spans.first() else {
            return Ok(0);
        };
        let taken = 1 + self.spans[1..]
            .iter()
            .take_while(|&&(_, end)| end - start <= max_bytes as u64)
            .count();
        let end = self.spans[taken - 1].1;
        let mut bytes = vec![0u8; (end - start) as usize];
        match file.read_exact_at(&mut bytes, start) {
            Ok(()) => {}
            // Cut short by someone else: those lines are gone.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        for &(line_start, line_end) in &self.spans[..taken] {
            let line = &bytes[(line_start - start) as usize..(line_end - start) as usize];
            // A line ends at its first newline (bytes someone else wrote
            // after it are no line of ours).
            if let Some(newline) = memchr::memchr(b'\n', line)
                && newline > 0
            {
                batch.push(&line[..newline]);
            }
        }
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(batch: &ForwardBatch) -> Vec<u64> {
        batch.lines().filter_map(id_of_line).collect()
    }

    /// Every id after `after`, batch by batch.
    fn read_all(path: &Path, index: &Arc<AuditIndex>, after: u64, max_lines: usize) -> Vec<u64> {
        let mut reader = ForwardReader::after(path, index.clone(), after).unwrap();
        let mut seen = Vec::new();
        loop {
            let batch = reader.next_batch(max_lines, 4096).unwrap();
            if batch.is_empty() {
                return seen;
            }
            assert!(batch.lines.len() <= max_lines);
            seen.extend(ids(&batch));
        }
    }

    #[test]
    fn every_id_after_the_one_given_comes_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut text = String::new();
        for id in 1..=300u64 {
            text.push_str(&format!("{{\"id\":{id},\"kind\":\"k\",\"ts\":{id}}}\n"));
            // Lines without an id, runs of them, an empty line and a line
            // longer than a batch's bytes, among the events.
            match id {
                5 => text.push_str("not json\n"),
                100..=140 => text.push_str("{\"ts\": 1.0, \"kind\": \"action_ok\"}\n"),
                200 => text.push('\n'),
                250 => text.push_str(&format!("{{\"pad\":\"{}\"}}\n", "x".repeat(10_000))),
                _ => {}
            }
        }
        // A torn last line is not read.
        text.push_str("{\"id\":301,");
        std::fs::write(&path, text).unwrap();
        let index = Arc::new(AuditIndex::build(&path).unwrap());
        for after in [
            0, 1, 4, 5, 6, 99, 100, 101, 140, 141, 199, 200, 249, 250, 299, 300, 301, 5000,
        ] {
            for max_lines in [1, 7, 2000] {
                let expected: Vec<u64> = (after + 1..=300).collect();
                assert_eq!(
                    read_all(&path, &index, after, max_lines),
                    expected,
                    "after {after}, {max_lines} lines a batch"
                );
            }
        }
    }

    #[test]
    fn a_trail_of_lines_without_ids_or_no_trail_reads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let index = Arc::new(AuditIndex::build(&path).unwrap());
        assert!(read_all(&path, &index, 0, 10).is_empty());
        std::fs::write(&path, "{\"kind\":\"a\"}\n{\"kind\":\"b\"}\n").unwrap();
        let index = Arc::new(AuditIndex::build(&path).unwrap());
        let mut reader = ForwardReader::after(&path, index, 0).unwrap();
        assert_eq!(reader.next_batch(10, 4096).unwrap().lines().count(), 2);
        assert!(reader.next_batch(10, 4096).unwrap().is_empty());
    }

    #[test]
    fn a_batch_stays_within_its_bytes_but_for_one_long_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let long = format!("{{\"id\":2,\"pad\":\"{}\"}}\n", "x".repeat(5000));
        std::fs::write(&path, format!("{{\"id\":1}}\n{long}{{\"id\":3}}\n{{\"id\":4}}\n")).unwrap();
        let index = Arc::new(AuditIndex::build(&path).unwrap());
        let mut reader = ForwardReader::after(&path, index, 0).unwrap();
        let batches: Vec<Vec<u64>> = (0..4)
            .map(|_| ids(&reader.next_batch(100, 1000).unwrap()))
            .collect();
        assert_eq!(batches, [vec![1], vec![2], vec![3, 4], vec![]]);
    }
}
