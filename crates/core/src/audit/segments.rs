//! The rolled segments of a trail: `audit.1.jsonl.zst` (the newest rolled),
//! `audit.2.jsonl.zst`, … beside the live `audit.jsonl`, and reading them.
//!
//! A compressed segment is a run of independent zstd frames, each of whole
//! lines (about [`FRAME_BYTES`] of them), so that a reader going backwards
//! decompresses one frame at a time, newest first, and a look-back bounded
//! by time stops after a frame or two instead of the whole segment.

use std::fs::File;
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Lines per frame of a compressed segment: about this many bytes.
pub(super) const FRAME_BYTES: usize = 1024 * 1024;
/// zstd's level: its default, fast enough to roll 256 MiB in well under a second.
const LEVEL: i32 = 3;

/// Held for reading while a reader opens the files of a trail (the live
/// file and its segments), for writing while a rotation renames them: a
/// reader in this process never sees a segment twice or misses one.
/// (Another process, such as `autoheal audit --file`, may race a rotation:
/// it reads what it opened.)
static GATE: RwLock<()> = RwLock::new(());

pub(super) fn gate_read() -> RwLockReadGuard<'static, ()> {
    GATE.read().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn gate_write() -> RwLockWriteGuard<'static, ()> {
    GATE.write().unwrap_or_else(PoisonError::into_inner)
}

/// One rolled segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// 1 is the newest.
    pub number: u32,
    /// Its file.
    pub path: PathBuf,
    /// zstd frames, or plain JSONL.
    pub compressed: bool,
}

/// `audit.jsonl` → (`audit`, `.jsonl`); a name without `.jsonl` keeps it whole.
fn name_parts(live: &Path) -> (String, &'static str) {
    let name = live
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.strip_suffix(".jsonl") {
        Some(stem) => (stem.to_owned(), ".jsonl"),
        None => (name, ""),
    }
}

/// The file of segment `number`.
pub fn segment_path(live: &Path, number: u32, compressed: bool) -> PathBuf {
    let (stem, ext) = name_parts(live);
    let zst = if compressed { ".zst" } else { "" };
    live.with_file_name(format!("{stem}.{number}{ext}{zst}"))
}

/// Where a segment is written before it is renamed into place.
pub(super) fn rolling_path(live: &Path) -> PathBuf {
    let (stem, ext) = name_parts(live);
    live.with_file_name(format!("{stem}.rolling{ext}.tmp"))
}

/// Where the empty live file is made before it replaces the rolled one.
pub(super) fn fresh_live_path(live: &Path) -> PathBuf {
    let (stem, ext) = name_parts(live);
    live.with_file_name(format!("{stem}.fresh{ext}.tmp"))
}

/// The segments beside `live`, newest (1) first; gaps are allowed (a crash
/// while they were renumbered leaves one, and the next rotation closes it).
pub fn list(live: &Path) -> io::Result<Vec<Segment>> {
    let (stem, ext) = name_parts(live);
    let dir = match live.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir.to_owned(),
        None => PathBuf::from("."),
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let prefix = format!("{stem}.");
    let mut segments = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let (rest, compressed) = match rest.strip_suffix(".zst") {
            Some(rest) => (rest, true),
            None => (rest, false),
        };
        let Some(number) = rest.strip_suffix(ext) else {
            continue;
        };
        // Digits only: `audit.torn-…`, `audit.rolling…` are not segments.
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) || number.starts_with('0') {
            continue;
        }
        let Ok(number) = number.parse::<u32>() else {
            continue;
        };
        segments.push(Segment {
            number,
            path: dir.join(name),
            compressed,
        });
    }
    segments.sort_by_key(|s| (s.number, s.compressed));
    Ok(segments)
}

/// The bytes of the live file and every segment.
pub fn total_bytes(live: &Path) -> io::Result<u64> {
    let mut total = match std::fs::metadata(live) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    for segment in list(live)? {
        match std::fs::metadata(&segment.path) {
            Ok(meta) => total += meta.len(),
            // Removed by retention since the listing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// An open segment: the handle stays valid across renames and removals.
pub(super) struct OpenSegment {
    file: File,
    compressed: bool,
}

/// The open segments of a trail, newest first (opened under the gate, so
/// that they are one consistent set).
pub(super) fn open_all(live: &Path) -> io::Result<Vec<OpenSegment>> {
    let mut open = Vec::new();
    for segment in list(live)? {
        match File::open(&segment.path) {
            Ok(file) => open.push(OpenSegment {
                file,
                compressed: segment.compressed,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(open)
}

impl OpenSegment {
    /// Calls `visit` with regions of whole lines, newest region first (the
    /// lines of a region in file order), as `scan_regions_backwards` does.
    pub(super) fn regions_backwards(
        &self,
        visit: &mut dyn FnMut(&[u8]) -> ControlFlow<()>,
    ) -> io::Result<ControlFlow<()>> {
        if !self.compressed {
            return super::reader::file_regions_backwards(&self.file, visit);
        }
        let data = self.compressed_bytes()?;
        let frames = frames(&data)?;
        for frame in frames.iter().rev() {
            let region = decompress(&data[frame.clone()])?;
            // A segment holds whole lines; bytes after the last newline
            // (a foreign file) are not a line.
            let whole = match memchr::memrchr(b'\n', &region) {
                Some(last) => &region[..=last],
                None => continue,
            };
            if visit(whole).is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Calls `visit` with regions of whole lines, oldest first.
    pub(super) fn regions_forward(
        &self,
        visit: &mut dyn FnMut(&[u8]) -> ControlFlow<()>,
    ) -> io::Result<ControlFlow<()>> {
        if self.compressed {
            let data = self.compressed_bytes()?;
            for frame in frames(&data)? {
                let region = decompress(&data[frame])?;
                if visit(&region).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
            return Ok(ControlFlow::Continue(()));
        }
        use std::os::unix::fs::FileExt;
        let mut offset = 0u64;
        let mut buf = vec![0u8; FRAME_BYTES];
        let mut kept = 0;
        loop {
            if kept == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            let read = self.file.read_at(&mut buf[kept..], offset)?;
            offset += read as u64;
            if read == 0 {
                return Ok(ControlFlow::Continue(()));
            }
            let filled = kept + read;
            let Some(last) = memchr::memrchr(b'\n', &buf[..filled]) else {
                kept = filled;
                continue;
            };
            if visit(&buf[..=last]).is_break() {
                return Ok(ControlFlow::Break(()));
            }
            buf.copy_within(last + 1..filled, 0);
            kept = filled - last - 1;
        }
    }

    /// A cursor over the segment's regions, oldest first, one at a time.
    pub(super) fn cursor(self) -> io::Result<SegmentCursor> {
        let (data, frames) = if self.compressed {
            let data = self.compressed_bytes()?;
            let frames = frames(&data)?;
            (data, frames.into())
        } else {
            (Vec::new(), Default::default())
        };
        Ok(SegmentCursor {
            segment: self,
            data,
            frames,
            offset: 0,
        })
    }

    fn compressed_bytes(&self) -> io::Result<Vec<u8>> {
        // Positioned reads: the handle's cursor is shared by every read of it.
        use std::os::unix::fs::FileExt;
        let mut data = vec![0u8; self.file.metadata()?.len() as usize];
        self.file.read_exact_at(&mut data, 0)?;
        Ok(data)
    }
}

/// A segment read forward a region at a time: a reader catching up holds
/// one frame decompressed (and the segment compressed), not the segment.
pub(super) struct SegmentCursor {
    segment: OpenSegment,
    data: Vec<u8>,
    frames: std::collections::VecDeque<std::ops::Range<usize>>,
    /// Of a plain segment: where the next region starts.
    offset: u64,
}

impl SegmentCursor {
    /// The next region of whole lines; `None` at the segment's end.
    pub(super) fn next_region(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.segment.compressed {
            return match self.frames.pop_front() {
                Some(frame) => decompress(&self.data[frame]).map(Some),
                None => Ok(None),
            };
        }
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; FRAME_BYTES];
        let mut filled = 0;
        loop {
            if filled == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            let read = self
                .segment
                .file
                .read_at(&mut buf[filled..], self.offset + filled as u64)?;
            filled += read;
            if read == 0 {
                // Bytes after the last newline are no line.
                return Ok(None);
            }
            if let Some(last) = memchr::memrchr(b'\n', &buf[..filled]) {
                buf.truncate(last + 1);
                self.offset += buf.len() as u64;
                return Ok(Some(buf));
            }
        }
    }
}

/// Where each zstd frame of `data` is.
fn frames(data: &[u8]) -> io::Result<Vec<std::ops::Range<usize>>> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let len = zstd::zstd_safe::find_frame_compressed_size(&data[at..]).map_err(|code| {
            invalid(format!(
                "not a zstd frame at byte {at}: {}",
                zstd::zstd_safe::get_error_name(code)
            ))
        })?;
        frames.push(at..at + len);
        at += len;
    }
    Ok(frames)
}

fn decompress(frame: &[u8]) -> io::Result<Vec<u8>> {
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) => size as usize,
        _ => return Err(invalid("a zstd frame without its content size".into())),
    };
    zstd::bulk::decompress(frame, size)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// What compressing a live file made.
pub(super) struct Written {
    /// Lines in it.
    pub lines: u64,
    /// Bytes of the segment file.
    pub bytes: u64,
}

/// Writes the first `len` bytes of `src` to `dst` as a segment (zstd frames
/// of whole lines, or a plain copy), and fsyncs it.
pub(super) fn write_segment(src: &File, len: u64, dst: &Path, compress: bool) -> io::Result<Written> {
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dst)?;
    // Positioned reads: the writer's handle is in append mode, its cursor
    // at the end of the file.
    use std::os::unix::fs::FileExt;
    let mut offset = 0u64;
    let mut buf = vec![0u8; FRAME_BYTES];
    let mut kept = 0;
    let (mut lines, mut bytes) = (0u64, 0u64);
    let mut emit = |chunk: &[u8], out: &mut File| -> io::Result<()> {
        lines += memchr::memchr_iter(b'\n', chunk).count() as u64;
        if compress {
            let frame = zstd::bulk::compress(chunk, LEVEL)?;
            out.write_all(&frame)?;
            bytes += frame.len() as u64;
        } else {
            out.write_all(chunk)?;
            bytes += chunk.len() as u64;
        }
        Ok(())
    };
    loop {
        if kept == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let want = (buf.len() - kept).min((len - offset) as usize);
        let read = src.read_at(&mut buf[kept..kept + want], offset)?;
        offset += read as u64;
        let filled = kept + read;
        if read == 0 {
            if filled > 0 {
                emit(&buf[..filled], &mut out)?;
            }
            break;
        }
        let Some(last) = memchr::memrchr(b'\n', &buf[..filled]) else {
            kept = filled;
            continue;
        };
        emit(&buf[..=last], &mut out)?;
        buf.copy_within(last + 1..filled, 0);
        kept = filled - last - 1;
    }
    out.sync_all()?;
    Ok(Written { lines, bytes })
}

/// fsync of a directory, so that the renames in it survive a power cut.
pub(super) fn sync_dir(live: &Path) -> io::Result<()> {
    let dir = match live.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir,
        None => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_named_numbered_and_listed_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("audit.jsonl");
        assert_eq!(segment_path(&live, 1, true), dir.path().join("audit.1.jsonl.zst"));
        assert_eq!(segment_path(&live, 12, false), dir.path().join("audit.12.jsonl"));
        for name in [
            "audit.jsonl",
            "audit.10.jsonl.zst",
            "audit.2.jsonl.zst",
            "audit.1.jsonl",
            "audit.jsonl.torn-17",
            "audit.rolling.jsonl.tmp",
            "audit.01.jsonl.zst",
            "other.3.jsonl.zst",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let numbers: Vec<(u32, bool)> = list(&live)
            .unwrap()
            .iter()
            .map(|s| (s.number, s.compressed))
            .collect();
        assert_eq!(numbers, [(1, false), (2, true), (10, true)]);
    }

    #[test]
    fn a_compressed_segment_reads_back_every_line_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("audit.jsonl");
        let mut text = String::new();
        for id in 1..=30_000u64 {
            // A line longer than a frame among them.
            let pad = if id == 777 {
                "y".repeat(FRAME_BYTES + 5)
            } else {
                String::new()
            };
            text.push_str(&format!("{{\"id\":{id},\"pad\":\"{pad}\"}}\n"));
        }
        std::fs::write(&live, &text).unwrap();
        for compress in [true, false] {
            let dst = segment_path(&live, 1, compress);
            let src = File::open(&live).unwrap();
            let written = write_segment(&src, text.len() as u64, &dst, compress).unwrap();
            assert_eq!(written.lines, 30_000);
            assert_eq!(written.bytes, std::fs::metadata(&dst).unwrap().len());
            if compress {
                assert!(written.bytes < text.len() as u64 / 4, "{} bytes", written.bytes);
            }
            let segment = OpenSegment {
                file: File::open(&dst).unwrap(),
                compressed: compress,
            };
            let mut forward = Vec::new();
            let _ = segment
                .regions_forward(&mut |region| {
                    forward.extend_from_slice(region);
                    ControlFlow::Continue(())
                })
                .unwrap();
            assert!(
                forward == text.as_bytes(),
                "compress {compress}: forward read {} bytes of {}",
                forward.len(),
                text.len()
            );
            let mut backward: Vec<Vec<u8>> = Vec::new();
            let _ = segment
                .regions_backwards(&mut |region| {
                    backward.push(region.to_vec());
                    ControlFlow::Continue(())
                })
                .unwrap();
            backward.reverse();
            let backward = backward.concat();
            assert!(
                backward == text.as_bytes(),
                "compress {compress}: backward read {} bytes of {}",
                backward.len(),
                text.len()
            );
        }
    }
}
