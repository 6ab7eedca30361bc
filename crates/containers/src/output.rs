//! Bounding what an exec or a log read gives back: the engine sends chunks
//! (frames of the Docker stream, already split by stream), and these keep
//! a fixed number of bytes however much arrives, so a container that floods
//! its output cannot grow the host's memory.

use std::collections::VecDeque;

use super::{LogLine, LogStream, Logs};

/// The longest prefix of `text` of at most `max` bytes that ends on a char boundary.
pub(crate) fn cut_to(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `bytes` as text, invalid UTF-8 replaced; when the bytes were cut, an
/// incomplete character at the cut is dropped rather than shown as U+FFFD.
fn text_of(bytes: &[u8], cut: bool) -> String {
    let bytes = match std::str::from_utf8(bytes) {
        // `error_len() == None`: the bytes end inside a character.
        Err(e) if cut && e.error_len().is_none() => &bytes[..e.valid_up_to()],
        _ => bytes,
    };
    String::from_utf8_lossy(bytes).into_owned()
}

/// Stdout and stderr of one exec, each kept to `max` bytes; the rest is
/// read (so the process is not blocked on a full pipe) and dropped.
#[derive(Debug)]
pub(crate) struct ExecCapture {
    max: usize,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Whether stdout, stderr had bytes dropped.
    cut: (bool, bool),
}

impl ExecCapture {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            stdout: Vec::new(),
            stderr: Vec::new(),
            cut: (false, false),
        }
    }

    /// Keeps what fits of a chunk of `stream`.
    pub(crate) fn push(&mut self, stream: LogStream, chunk: &[u8]) {
        let (buffer, cut) = match stream {
            LogStream::Stdout => (&mut self.stdout, &mut self.cut.0),
            LogStream::Stderr => (&mut self.stderr, &mut self.cut.1),
        };
        let room = self.max.saturating_sub(buffer.len());
        *cut |= chunk.len() > room;
        buffer.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    /// (stdout, stderr, truncated), each text at most `max` bytes.
    pub(crate) fn finish(self) -> (String, String, bool) {
        let text = |bytes: &[u8], cut: bool| {
            // Lossy replacement can lengthen invalid bytes (1 → 3), hence the cut.
            cut_to(&text_of(bytes, cut), self.max).to_owned()
        };
        (
            text(&self.stdout, self.cut.0),
            text(&self.stderr, self.cut.1),
            self.cut.0 || self.cut.1,
        )
    }
}

/// A line being assembled from chunks of one stream.
#[derive(Debug, Default)]
struct Partial {
    bytes: Vec<u8>,
    /// The line passed `max`: the rest of it, up to its newline, is dropped.
    overflowed: bool,
}

/// The newest lines of a log, at most `max` bytes of text in all: chunks
/// are split into lines per stream (a line may span chunks), lines are kept
/// in the order they complete, and the oldest go first when over `max`.
#[derive(Debug)]
pub(crate) struct LogTail {
    max: usize,
    lines: VecDeque<LogLine>,
    bytes: usize,
    truncated: bool,
    stdout: Partial,
    stderr: Partial,
}

impl LogTail {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            lines: VecDeque::new(),
            bytes: 0,
            truncated: false,
            stdout: Partial::default(),
            stderr: Partial::default(),
        }
    }

    /// Takes a chunk of `stream`, keeping the lines it completes.
    pub(crate) fn push(&mut self, stream: LogStream, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let newline = chunk.iter().position(|b| *b == b'\n');
            let (part, rest) = match newline {
                Some(at) => (&chunk[..at], &chunk[at + 1..]),
                None => (chunk, &[][..]),
            };
            let max = self.max;
            let partial = self.partial(stream);
            // One byte per char at worst beyond `max` is enough to cut on a
            // boundary later; anything more of this line is dropped.
            let room = (max + 3).saturating_sub(partial.bytes.len());
            if part.len() > room {
                partial.overflowed = true;
            }
            partial.bytes.extend_from_slice(&part[..part.len().min(room)]);
            if newline.is_some() {
                self.complete(stream);
            }
            chunk = rest;
        }
    }

    /// The lines kept, unfinished last lines included.
    pub(crate) fn finish(mut self) -> Logs {
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            if !self.partial(stream).bytes.is_empty() {
                self.complete(stream);
            }
        }
        Logs {
            lines: self.lines.into(),
            truncated: self.truncated,
        }
    }

    fn partial(&mut self, stream: LogStream) -> &mut Partial {
        match stream {
            LogStream::Stdout => &mut self.stdout,
            LogStream::Stderr => &mut self.stderr,
        }
    }

    fn complete(&mut self, stream: LogStream) {
        let max = self.max;
        let Partial { bytes, overflowed } = std::mem::take(self.partial(stream));
        let cut = overflowed || bytes.len() > max;
        let text = text_of(&bytes, cut);
        let text = cut_to(text.trim_end_matches('\r'), max).to_owned();
        self.truncated |= cut;
        if cut && text.is_empty() {
            // Nothing of it fits (`max` 0): no line rather than a blank one.
            return;
        }
        self.bytes += text.len();
        self.lines.push_back(LogLine { stream, text });
        while self.bytes > self.max {
            let oldest = self.lines.pop_front().expect("bytes counted are in lines");
            self.bytes -= oldest.text.len();
            self.truncated = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LogStream::{Stderr, Stdout};

    fn line(stream: LogStream, text: &str) -> LogLine {
        LogLine {
            stream,
            text: text.into(),
        }
    }

    #[test]
    fn cut_to_stays_on_char_boundaries() {
        assert_eq!(cut_to("héllo", 2), "h");
        assert_eq!(cut_to("héllo", 3), "hé");
        assert_eq!(cut_to("héllo", 100), "héllo");
        assert_eq!(cut_to("€", 2), "");
    }

    #[test]
    fn exec_capture_keeps_each_stream_apart_and_bounded() {
        let mut capture = ExecCapture::new(8);
        capture.push(Stdout, b"hello ");
        capture.push(Stderr, b"oops\n");
        capture.push(Stdout, b"world\n");
        // A chunk far over the bound: read, and dropped.
        capture.push(Stdout, &[b'x'; 100_000]);
        let (stdout, stderr, truncated) = capture.finish();
        assert_eq!(
            (stdout.as_str(), stderr.as_str(), truncated),
            ("hello wo", "oops\n", true)
        );

        let mut capture = ExecCapture::new(8);
        capture.push(Stdout, b"12345678");
        assert_eq!(capture.finish(), ("12345678".into(), String::new(), false));
    }

    #[test]
    fn exec_capture_joins_a_character_split_across_chunks_and_never_splits_one_at_the_cut() {
        let euro = "€".as_bytes();
        let mut capture = ExecCapture::new(64);
        capture.push(Stdout, &euro[..1]);
        capture.push(Stdout, &euro[1..]);
        assert_eq!(capture.finish().0, "€");

        // The bound falls inside the second €: it is dropped, not mangled.
        let mut capture = ExecCapture::new(4);
        capture.push(Stdout, "€€".as_bytes());
        assert_eq!(capture.finish(), ("€".into(), String::new(), true));

        // Invalid bytes become U+FFFD, and still within the bound.
        let mut capture = ExecCapture::new(4);
        capture.push(Stderr, &[0xff, 0xfe, b'a']);
        let (_, stderr, _) = capture.finish();
        assert!(stderr.len() <= 4 && stderr.starts_with('\u{fffd}'), "{stderr:?}");
    }

    #[test]
    fn log_tail_splits_lines_across_chunks_in_order() {
        let mut tail = LogTail::new(1000);
        tail.push(Stdout, b"out1\nou");
        tail.push(Stderr, b"err1\r\n");
        tail.push(Stdout, b"t2\nout3");
        tail.push(Stderr, b"err2");
        let logs = tail.finish();
        assert_eq!(
            logs.lines,
            [
                line(Stdout, "out1"),
                line(Stderr, "err1"),
                line(Stdout, "out2"),
                line(Stdout, "out3"),
                line(Stderr, "err2"),
            ]
        );
        assert!(!logs.truncated);
        // Empty lines are lines.
        let mut tail = LogTail::new(10);
        tail.push(Stdout, b"\n\na\n");
        assert_eq!(
            tail.finish().lines,
            [line(Stdout, ""), line(Stdout, ""), line(Stdout, "a")]
        );
    }

    #[test]
    fn log_tail_keeps_the_newest_lines_within_the_bytes() {
        let mut tail = LogTail::new(10);
        for n in 1..=9 {
            tail.push(
                if n % 2 == 0 { Stderr } else { Stdout },
                format!("line{n}\n").as_bytes(),
            );
        }
        let logs = tail.finish();
        // 5 bytes a line: the newest two fit in 10.
        assert_eq!(logs.lines, [line(Stderr, "line8"), line(Stdout, "line9")]);
        assert!(logs.truncated);
    }

    #[test]
    fn log_tail_cuts_a_line_longer_than_everything_it_may_keep() {
        let mut tail = LogTail::new(6);
        tail.push(Stdout, b"old\n");
        // One line of 1 MB in many chunks: bounded while it arrives.
        for _ in 0..1000 {
            tail.push(Stdout, &[b'y'; 1000]);
            assert!(tail.stdout.bytes.len() <= 6 + 3);
        }
        tail.push(Stdout, b"\nnew\n");
        let logs = tail.finish();
        assert_eq!(logs.lines, [line(Stdout, "new")]);
        assert!(logs.truncated);

        let mut tail = LogTail::new(5);
        tail.push(Stderr, "ab€€€\n".as_bytes());
        let logs = tail.finish();
        assert_eq!(logs.lines, [line(Stderr, "ab€")]);
        assert!(logs.truncated);
    }

    #[test]
    fn log_tail_of_nothing_keeps_nothing() {
        let logs = LogTail::new(0).finish();
        assert!(logs.lines.is_empty() && !logs.truncated);
        let mut tail = LogTail::new(0);
        tail.push(Stdout, b"x\n");
        let logs = tail.finish();
        assert!(logs.lines.is_empty() && logs.truncated, "{logs:?}");
    }
}
