//! Where each line of the trail starts, with its kind and alertname, so that
//! `GET /audit?kind=<rare kind>` reads the few lines that can match instead
//! of every line of the file.
//!
//! The JSONL file stays the record of truth (people `tail -f` and `jq` it):
//! the index is rebuilt from it when the trail is opened and kept current by
//! the writer after each commit. It holds 13 bytes a line — a start offset
//! and two small ids — plus a table of at most 4,096 alertnames of at most
//! 256 bytes (senders choose them; the rest share one id and are told
//! apart by their parse), and nothing it could disagree with the file about:
//! every line it proposes is read back from the file and parsed, and the
//! full filter decides.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError, RwLock};

use super::reader::{AuditFilter, Fields, Tail, open_if_exists};
use crate::event::EventKind;

/// Kind id of a line that is not a JSON object: no query returns it.
const NOT_AN_EVENT: u8 = u8::MAX;
/// Kind id of a line without a string `kind`: no kind filter matches it.
const NO_KIND: u8 = u8::MAX - 1;
/// Kind id shared by every kind after the first 250 distinct ones (only a
/// damaged or foreign trail has so many): such a line is proposed to every
/// kind filter, and its parse decides.
const OTHER_KIND: u8 = u8::MAX - 2;
/// Alertname id of a line without a string `alertname`.
const NO_ALERTNAME: u32 = 0;
/// Alertname id shared by every name the table does not hold: such a line
/// is proposed to every filter on a name the table does not hold, and its
/// parse decides.
const OTHER_ALERTNAME: u32 = u32::MAX;
/// Distinct alertnames given an id of their own. Senders choose names, and
/// the table is never emptied, so it has a bound; later names share
/// [`OTHER_ALERTNAME`].
pub(super) const MAX_INTERNED_ALERTNAMES: usize = 4096;
/// Longest alertname given an id of its own: with the count above, the
/// table holds at most about 1 MiB of names however long senders make them.
pub(super) const MAX_INTERNED_ALERTNAME_BYTES: usize = 256;
/// Lines looked at per hold of the lock: a query never keeps the writer
/// waiting for more than this many comparisons.
const SCAN_STEP: usize = 64 * 1024;
/// Proposed lines closer together than this are read with one `pread`, so
/// that a common kind costs a sequential read, not a syscall a line.
const READ_SPAN: u64 = 256 * 1024;
/// Bytes read per `read` while the index is built.
const BUILD_CHUNK: usize = 1024 * 1024;

/// The index of one trail.
pub(super) struct AuditIndex {
    lines: RwLock<Lines>,
    kinds: Mutex<HashMap<Box<str>, u8>>,
    alertnames: Mutex<HashMap<Box<str>, u32>>,
}

/// One entry per line, in file order.
#[derive(Default)]
struct Lines {
    starts: Vec<u64>,
    kinds: Vec<u8>,
    alertnames: Vec<u32>,
    /// Where the last indexed line ends.
    end: u64,
    /// Which live file the lines are of: one more at each rotation (or a
    /// file cut short under the writer), so that a reader holding
    /// positions of the old file knows they are gone.
    generation: u64,
}

/// What [`AuditIndex::read_tail`] did.
pub(super) enum IndexRead {
    /// The filter names neither a kind nor an alertname: the index cannot
    /// narrow it, nothing was read.
    NotNarrowed,
    /// The live file's lines were offered to the tail.
    Read,
    /// The live file rolled while it was read: read again.
    Rolled,
}

/// What the writer tells the index about a line it appends.
#[derive(Debug, Clone, Copy)]
pub(super) struct LineHead {
    /// The line's length with its newline.
    pub len: u64,
    /// [`AuditIndex::event_kind_id`].
    pub kind: u8,
    /// [`AuditIndex::alertname_id`].
    pub alertname: u32,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AuditIndex {
    fn empty() -> Self {
        // The host's kinds get their fixed ids, so the writer needs no lookup.
        let kinds = EventKind::ALL
            .iter()
            .map(|&kind| (kind.as_str().into(), kind as u8))
            .collect();
        Self {
            lines: RwLock::default(),
            kinds: Mutex::new(kinds),
            alertnames: Mutex::default(),
        }
    }

    /// Indexes every complete line of the file (a missing file has none).
    pub fn build(path: &Path) -> io::Result<Self> {
        let index = Self::empty();
        let Some(mut file) = open_if_exists(path)? else {
            return Ok(index);
        };
        let mut lines = Lines::default();
        let mut buf = vec![0u8; BUILD_CHUNK];
        // Bytes of `buf` from an earlier read: the start of a line.
        let mut kept = 0;
        loop {
            if kept == buf.len() {
                // A line longer than the buffer: grow it.
                buf.resize(buf.len() * 2, 0);
            }
            let read = file.read(&mut buf[kept..])?;
            if read == 0 {
                break;
            }
            let filled = kept + read;
            let mut at = 0;
            while let Some(newline) = memchr::memchr(b'\n', &buf[at..filled]) {
                let line = &buf[at..at + newline];
                let (kind, alertname) = index.classify(line);
                lines.push(kind, alertname, newline as u64 + 1);
                at += newline + 1;
            }
            buf.copy_within(at..filled, 0);
            kept = filled - at;
        }
        *index.lines.write().unwrap_or_else(PoisonError::into_inner) = lines;
        Ok(index)
    }

    /// The kind id of one of the host's own kinds.
    pub fn event_kind_id(kind: EventKind) -> u8 {
        kind as u8
    }

    fn kind_id(&self, kind: Option<&str>) -> u8 {
        let Some(kind) = kind else {
            return NO_KIND;
        };
        let mut kinds = lock(&self.kinds);
        if let Some(&id) = kinds.get(kind) {
            return id;
        }
        if kinds.len() >= OTHER_KIND as usize {
            return OTHER_KIND;
        }
        let id = kinds.len() as u8;
        kinds.insert(kind.into(), id);
        id
    }

    /// The id of an alertname, given one the first time it is seen while
    /// the table has room and the name is short enough; else
    /// [`OTHER_ALERTNAME`]. A name that has an id has it on every line, as
    /// the table only grows: a name first seen once it is full never gets one.
    pub fn alertname_id(&self, alertname: Option<&str>) -> u32 {
        let Some(alertname) = alertname else {
            return NO_ALERTNAME;
        };
        if alertname.len() > MAX_INTERNED_ALERTNAME_BYTES {
            return OTHER_ALERTNAME;
        }
        let mut alertnames = lock(&self.alertnames);
        if let Some(&id) = alertnames.get(alertname) {
            return id;
        }
        if alertnames.len() >= MAX_INTERNED_ALERTNAMES {
            return OTHER_ALERTNAME;
        }
        let id = alertnames.len() as u32 + 1;
        alertnames.insert(alertname.into(), id);
        id
    }

    /// A line's kind and alertname ids, exactly as a parse into a
    /// [`serde_json::Value`] would give its top-level `kind` and `alertname` strings.
    fn classify(&self, line: &[u8]) -> (u8, u32) {
        match std::str::from_utf8(line).ok().and_then(Fields::of) {
            Some(fields) => (
                self.kind_id(fields.kind.as_deref()),
                self.alertname_id(fields.alertname.as_deref()),
            ),
            None => (NOT_AN_EVENT, NO_ALERTNAME),
        }
    }

    /// Adds the lines of a commit that began at byte `start` of the file.
    pub fn append(&self, start: u64, heads: impl IntoIterator<Item = LineHead>) {
        let mut lines = self.lines.write().unwrap_or_else(PoisonError::into_inner);
        // Bytes written by someone else since the last commit are not lines of ours.
        lines.end = start;
        for head in heads {
            lines.push(head.kind, head.alertname, head.len);
        }
    }

    /// The live file's generation (see [`Lines::generation`]).
    pub fn generation(&self) -> u64 {
        self.lines
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .generation
    }

    /// Forgets every line: the live file was replaced by an empty one (a
    /// rotation) or cut short under the writer.
    pub fn reset(&self) {
        let mut lines = self.lines.write().unwrap_or_else(PoisonError::into_inner);
        let generation = lines.generation + 1;
        *lines = Lines {
            generation,
            ..Lines::default()
        };
    }

    /// Offers the lines of the live file (`file`, opened when the index was
    /// at `generation`) that may match `filter` to `tail`, newest first, as
    /// [`super::read_tail_as_written`] would.
    pub fn read_tail(
        &self,
        file: Option<&std::fs::File>,
        generation: u64,
        filter: &AuditFilter,
        tail: &mut Tail,
    ) -> io::Result<IndexRead> {
        if filter.kinds.is_empty() && filter.alertname.is_none() {
            return Ok(IndexRead::NotNarrowed);
        }
        let kinds = (!filter.kinds.is_empty()).then(|| {
            let known = lock(&self.kinds);
            let mut wanted = [false; 256];
            for kind in &filter.kinds {
                if let Some(&id) = known.get(kind.as_str()) {
                    wanted[id as usize] = true;
                }
            }
            wanted[OTHER_KIND as usize] = true;
            wanted
        });
        // A name without an id of its own can only be on the lines that share
        // OTHER_ALERTNAME; their parse decides.
        let alertname = filter.alertname.as_ref().map(|name| {
            lock(&self.alertnames)
                .get(name.as_str())
                .copied()
                .unwrap_or(OTHER_ALERTNAME)
        });
        let Some(file) = file else {
            return Ok(IndexRead::Read);
        };
        // The index has decided kind and alertname, but for kinds past the
        // 250th (OTHER_KIND) and names without an id (OTHER_ALERTNAME);
        // `contains` and `since` are left.
        let (decided, undecided) = (filter.index_looks(true), filter.index_looks(false));
        let mut pos = {
            let lines = self.lines.read().unwrap_or_else(PoisonError::into_inner);
            if lines.generation != generation {
                return Ok(IndexRead::Rolled);
            }
            lines.starts.len()
        };
        // (start, end, kind and alertname decided) of each line, newest first.
        let mut proposed: Vec<(u64, u64, bool)> = Vec::new();
        let mut buf = Vec::new();
        'scan: while pos > 0 && tail.missing() > 0 {
            // Propose lines (newest first) under the lock, read them without it.
            proposed.clear();
            let wanted = if filter.contains.is_some() {
                4096
            } else {
                tail.missing()
            };
            {
                let lines = self.lines.read().unwrap_or_else(PoisonError::into_inner);
                if lines.generation != generation {
                    return Ok(IndexRead::Rolled);
                }
                let stop = pos.saturating_sub(SCAN_STEP);
                while pos > stop && proposed.len() < wanted {
                    pos -= 1;
                    let kind = lines.kinds[pos];
                    if kind == NOT_AN_EVENT
                        || kinds.is_some_and(|wanted| !wanted[kind as usize])
                        || alertname.is_some_and(|id| lines.alertnames[pos] != id)
                    {
                        continue;
                    }
                    let decided = kind != OTHER_KIND && alertname != Some(OTHER_ALERTNAME);
                    proposed.push((lines.starts[pos], lines.line_end(pos), decided));
                }
            }
            let mut group = 0;
            while group < proposed.len() {
                // Newest first: a group spans from its last (oldest) line's
                // start to its first line's end.
                let end = proposed[group].1;
                let mut last = group;
                while last + 1 < proposed.len() && end - proposed[last + 1].0 <= READ_SPAN {
                    last += 1;
                }
                let start = proposed[last].0;
                buf.resize((end - start) as usize, 0);
                match file.read_exact_at(&mut buf, start) {
                    Ok(()) => {}
                    // Cut short by someone else: those lines are gone.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break 'scan,
                    Err(e) => return Err(e),
                }
                for &(line_start, line_end, decided_by_index) in &proposed[group..=last] {
                    let bytes = &buf[(line_start - start) as usize..(line_end - start) as usize];
                    let line = match memchr::memchr(b'\n', bytes) {
                        Some(newline) => &bytes[..newline],
                        None => continue,
                    };
                    let looks = if decided_by_index { &decided } else { &undecided };
                    if tail.offer(line, looks).is_break() {
                        break 'scan;
                    }
                }
                group = last + 1;
            }
        }
        Ok(IndexRead::Read)
    }

    /// How many lines are indexed (every committed line, after a flush).
    pub fn line_count(&self) -> usize {
        self.lines
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .starts
            .len()
    }

    /// Where lines `from..to` are in the file (`to` clamped to the lines
    /// indexed): the start of each, and where the last ends. A forward read
    /// takes the spans under the lock and reads the file without it.
    /// False (and nothing taken) when the index is no longer of `generation`.
    pub fn spans(&self, generation: u64, from: usize, to: usize, out: &mut Vec<(u64, u64)>) -> bool {
        let lines = self.lines.read().unwrap_or_else(PoisonError::into_inner);
        if lines.generation != generation {
            return false;
        }
        let to = to.min(lines.starts.len());
        out.extend((from..to).map(|i| (lines.starts[i], lines.line_end(i))));
        true
    }
}

impl Lines {
    fn push(&mut self, kind: u8, alertname: u32, len: u64) {
        self.starts.push(self.end);
        self.kinds.push(kind);
        self.alertnames.push(alertname);
        self.end += len;
    }

    /// Where line `i` ends (its newline included), or where the next begins.
    fn line_end(&self, i: usize) -> u64 {
        self.starts.get(i + 1).copied().unwrap_or(self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alertname_table_stays_at_its_bound() {
        let index = AuditIndex::empty();
        // 8,000 unique 4 KB names, then as many short ones: none past the
        // bound is held, and the first names keep their ids.
        let first = index.alertname_id(Some("First"));
        for i in 0..8_000 {
            let long = format!("{i}{}", "a".repeat(4096));
            assert_eq!(index.alertname_id(Some(&long)), OTHER_ALERTNAME);
        }
        for i in 0..8_000 {
            index.alertname_id(Some(&format!("Short{i}")));
        }
        let held = lock(&index.alertnames);
        assert_eq!(held.len(), MAX_INTERNED_ALERTNAMES);
        assert!(held.keys().all(|name| name.len() <= MAX_INTERNED_ALERTNAME_BYTES));
        let bytes: usize = held.keys().map(|name| name.len()).sum();
        assert!(bytes < 64 * 1024, "{bytes} bytes of names held");
        drop(held);
        assert_eq!(index.alertname_id(Some("First")), first);
        assert_eq!(index.alertname_id(Some("Short7999")), OTHER_ALERTNAME);
        assert_eq!(index.alertname_id(None), NO_ALERTNAME);
    }
}
