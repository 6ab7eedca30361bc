//! Reading the trail from its end, so that "the last 200 events" costs the
//! same on a file of a kilobyte or of a gigabyte.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde_json::Value;
use serde_json::value::RawValue;

use super::segments;
use crate::query::{Query, QueryError};

const CHUNK: u64 = 64 * 1024;

/// Calls `visit` with each complete line of the trail, last line first —
/// the live file's, then its rolled segments' (newest first), so that a
/// look-back bounded by time reads across a rollover; empty lines are not
/// visited.
/// A final line without its newline (a write in progress, or a torn one) is
/// not a complete line and is not visited. A missing file has no lines.
pub fn scan_backwards(path: &Path, mut visit: impl FnMut(&[u8]) -> ControlFlow<()>) -> io::Result<()> {
    scan_regions_backwards(path, |region| visit_lines_backwards(region, &mut visit))
}

/// The trail for reading; `None` if there is none yet (no lines).
pub(super) fn open_if_exists(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Calls `visit` with each non-empty line of a region (whole lines, each
/// with its newline), last line first.
pub(super) fn visit_lines_backwards(
    region: &[u8],
    visit: &mut impl FnMut(&[u8]) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let lines = region.strip_suffix(b"\n").unwrap_or(region);
    for line in lines.rsplit(|&b| b == b'\n') {
        if !line.is_empty() {
            visit(line)?;
        }
    }
    ControlFlow::Continue(())
}

/// Calls `visit` with the trail's complete lines in regions, last region
/// first: each region is one or more whole lines, each with its newline,
/// in file order (so that a search can run over many lines at once). The
/// live file is read first, then its rolled segments, newest first.
/// The final line without its newline is left out, as by [`scan_backwards`].
pub(super) fn scan_regions_backwards(
    path: &Path,
    mut visit: impl FnMut(&[u8]) -> ControlFlow<()>,
) -> io::Result<()> {
    let (live, segments) = {
        let _gate = segments::gate_read();
        (open_if_exists(path)?, segments::open_all(path)?)
    };
    if let Some(live) = live
        && file_regions_backwards(&live, &mut visit)?.is_break()
    {
        return Ok(());
    }
    scan_segments_backwards(&segments, &mut visit)
}

/// The regions of rolled segments, newest first, as [`scan_regions_backwards`].
pub(super) fn scan_segments_backwards(
    segments: &[segments::OpenSegment],
    visit: &mut dyn FnMut(&[u8]) -> ControlFlow<()>,
) -> io::Result<()> {
    for segment in segments {
        if segment.regions_backwards(visit)?.is_break() {
            break;
        }
    }
    Ok(())
}

/// [`scan_regions_backwards`] of one file; `Break` if `visit` stopped.
pub(super) fn file_regions_backwards(
    file: &File,
    visit: &mut dyn FnMut(&[u8]) -> ControlFlow<()>,
) -> io::Result<ControlFlow<()>> {
    let mut pos = file.metadata()?.len();
    // The start of a line whose end was in the regions already read, as the
    // regions read (newest first): joined once, when the line's first byte
    // is found, so that a huge line costs a linear read, not a quadratic one.
    let mut carry: Vec<Vec<u8>> = Vec::new();
    // Until the first newline is seen, bytes belong to an unterminated line.
    let mut in_unterminated_tail = true;
    while pos > 0 {
        let start = pos.saturating_sub(CHUNK);
        let mut buf = vec![0; (pos - start) as usize];
        file.read_exact_at(&mut buf, start)?;
        pos = start;

        let Some(first_newline) = memchr::memchr(b'\n', &buf) else {
            // No newline in this region: the whole region continues a line.
            if !in_unterminated_tail {
                carry.push(buf);
            }
            continue;
        };
        if in_unterminated_tail {
            let last_newline = memchr::memrchr(b'\n', &buf).expect("the region has a newline");
            buf.truncate(last_newline + 1);
            in_unterminated_tail = false;
        }
        for part in carry.drain(..).rev() {
            buf.extend_from_slice(&part);
        }
        let region = &buf[first_newline + 1..];
        if !region.is_empty() && visit(region).is_break() {
            return Ok(ControlFlow::Break(()));
        }
        buf.truncate(first_newline + 1);
        carry.push(buf);
    }
    if !in_unterminated_tail {
        let mut first = Vec::new();
        for part in carry.drain(..).rev() {
            first.extend_from_slice(&part);
        }
        return Ok(visit(&first));
    }
    Ok(ControlFlow::Continue(()))
}

/// A cheap look at a line before parsing it: its `kind` is one of `kinds`.
/// Lines are written by this crate, so `"kind":"<kind>"` appears verbatim;
/// a start-up scan of a million events parses only the few it needs.
pub fn line_has_kind(line: &[u8], kinds: &[&str]) -> bool {
    // memchr's search is optimised even in a debug build of this crate.
    let Some(at) = memchr::memmem::find(line, b"\"kind\":\"") else {
        return false;
    };
    let rest = &line[at + 8..];
    kinds
        .iter()
        .any(|kind| rest.starts_with(kind.as_bytes()) && rest.get(kind.len()) == Some(&b'"'))
}

/// A cheap look at a line before parsing it: it has the field `name` (as
/// `"name":`, verbatim, as this crate writes it).
pub fn line_has_field(line: &[u8], name: &str) -> bool {
    let mut needle = Vec::with_capacity(name.len() + 3);
    needle.push(b'"');
    needle.extend_from_slice(name.as_bytes());
    needle.extend_from_slice(b"\":");
    memchr::memmem::find(line, &needle).is_some()
}

/// The `ts` of a line without parsing the rest of it (`None` if absent).
pub fn line_ts(line: &[u8]) -> Option<f64> {
    let needle = b"\"ts\":";
    let at = memchr::memmem::rfind(line, needle)? + needle.len();
    let end = line[at..]
        .iter()
        .position(|b| !(b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'e' | b'E' | b'+')))
        .map_or(line.len(), |n| at + n);
    std::str::from_utf8(&line[at..end]).ok()?.parse().ok()
}

/// The `GET /audit` filters.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Any of these kinds (empty: all).
    pub kinds: Vec<String>,
    /// Only events about this alertname.
    pub alertname: Option<String>,
    /// Events at or after this unix time.
    pub since: Option<f64>,
    /// Case-insensitive text anywhere in the event's JSON.
    pub contains: Option<String>,
}

/// `n` of `GET /audit` when the query gives none.
pub const AUDIT_DEFAULT_N: usize = 200;
/// The largest `n` of `GET /audit`.
pub const AUDIT_MAX_N: usize = 5000;

/// A `GET /audit` request: which events, and how many of the newest.
#[derive(Debug, Clone)]
pub struct AuditQuery {
    /// Which events.
    pub filter: AuditFilter,
    /// How many of the newest that match, at most [`AUDIT_MAX_N`].
    pub n: usize,
}

impl AuditQuery {
    /// Parses `GET /audit`'s query string (`n`, `kind`, `alertname`,
    /// `since`, `contains`); anything else is an error.
    pub fn parse(text: Option<&str>) -> Result<Self, QueryError> {
        let query = Query::parse(text)?;
        query.expect_only(&["n", "kind", "alertname", "since", "contains"])?;
        let n = query.one::<usize>("n")?.unwrap_or(AUDIT_DEFAULT_N);
        if n > AUDIT_MAX_N {
            return Err(QueryError::TooLarge {
                key: "n".to_owned(),
                max: AUDIT_MAX_N as u64,
            });
        }
        // `NaN` and `inf` parse as floats but are no point in time.
        let since = query.one::<f64>("since")?;
        if let Some(since) = since.filter(|s| !s.is_finite()) {
            return Err(QueryError::Invalid {
                key: "since".to_owned(),
                value: since.to_string(),
            });
        }
        Ok(Self {
            n,
            filter: AuditFilter {
                kinds: query.list("kind"),
                alertname: query.non_empty("alertname")?,
                since,
                contains: query.non_empty("contains")?,
            },
        })
    }
}

impl AuditFilter {
    /// A look at the line's bytes that rejects most lines that cannot
    /// match, before any parse: false only if [`AuditFilter::matches`]
    /// would be false too, for the lines this host writes (the scanners it
    /// uses are held to a full parse by the `audit_line` fuzz target).
    fn may_match(&self, line: &[u8], looks: &Looks) -> bool {
        if let Some(needle) = &self.contains
            && needle.is_ascii()
            && line.is_ascii()
            && !contains_ascii_ignore_case(line, needle.as_bytes())
        {
            return false;
        }
        if !looks.bytes {
            return true;
        }
        // Kind and alertname are looked for as this host writes them,
        // without spaces; a line written otherwise (the original system's
        // `json.dumps`, with spaces) is left to the parse.
        let Some(kind_at) = memchr::memmem::find(line, b"\"kind\":\"") else {
            return true;
        };
        if !self.kinds.is_empty() {
            let kinds: Vec<&str> = self.kinds.iter().map(String::as_str).collect();
            if !line_has_kind(&line[kind_at..], &kinds) {
                return false;
            }
        }
        if let Some(needle) = &looks.alertname
            && memchr::memmem::find(line, needle).is_none()
        {
            return false;
        }
        true
    }

    /// The filter on a line and the fields a parse read from it (`None`
    /// when the index has already decided kind and alertname).
    fn matches(&self, line: &[u8], fields: Option<&Fields>) -> bool {
        if let Some(fields) = fields {
            if !self.kinds.is_empty()
                && !self
                    .kinds
                    .iter()
                    .any(|k| Some(k.as_str()) == fields.kind.as_deref())
            {
                return false;
            }
            if let Some(alertname) = &self.alertname
                && fields.alertname.as_deref() != Some(alertname.as_str())
            {
                return false;
            }
        }
        // ASCII both: the byte search of `may_match`, always made first, was
        // exact; otherwise Unicode case folding (which can map non-ASCII to
        // ASCII) decides.
        if let Some(needle) = &self.contains
            && !(needle.is_ascii() && line.is_ascii())
            && !String::from_utf8_lossy(line)
                .to_lowercase()
                .contains(&needle.to_lowercase())
        {
            return false;
        }
        true
    }
}

/// The line as written, if a parse into a [`Value`] would accept it.
fn as_written(line: &[u8]) -> Option<Box<RawValue>> {
    // A `RawValue` alone checks less than a `Value` parse (no depth limit,
    // numbers out of range): what `GET /audit` sends must parse anywhere.
    serde_json::from_slice::<ValidJson>(line).ok()?;
    let text = std::str::from_utf8(line.trim_ascii()).ok()?;
    RawValue::from_string(text.to_owned()).ok()
}

/// A JSON value read by the parser's own paths for a [`Value`] — its depth
/// limit, its numbers, its strings and escapes — without building it.
struct ValidJson;

impl<'de> serde::Deserialize<'de> for ValidJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValidJsonVisitor)
    }
}

struct ValidJsonVisitor;

impl<'de> serde::de::Visitor<'de> for ValidJsonVisitor {
    type Value = ValidJson;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<ValidJson, E> {
        Ok(ValidJson)
    }
    fn visit_i64<E>(self, _: i64) -> Result<ValidJson, E> {
        Ok(ValidJson)
    }
    fn visit_u64<E>(self, _: u64) -> Result<ValidJson, E> {
        Ok(ValidJson)
    }
    fn visit_f64<E>(self, _: f64) -> Result<ValidJson, E> {
        Ok(ValidJson)
    }
    fn visit_str<E>(self, _: &str) -> Result<ValidJson, E> {
        Ok(ValidJson)
    }
    fn visit_unit<E>(self) -> Result<ValidJson, E> {
        Ok(ValidJson)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ValidJson, A::Error> {
        while seq.next_element::<ValidJson>()?.is_some() {}
        Ok(ValidJson)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<ValidJson, A::Error> {
        while map.next_entry::<ValidJson, ValidJson>()?.is_some() {}
        Ok(ValidJson)
    }
}

/// The fields of an event a filter (or the index) looks at, as a parse into
/// a [`Value`] gives them: the top-level `kind` and `alertname` strings and
/// the `ts` number (0 when it is not one).
#[derive(Default)]
pub(super) struct Fields<'a> {
    pub kind: Option<Cow<'a, str>>,
    pub alertname: Option<Cow<'a, str>>,
    pub ts: f64,
}

/// What serde reads of an object without building the rest of it.
#[derive(serde::Deserialize)]
struct BorrowedFields<'a> {
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    alertname: Option<Cow<'a, str>>,
    #[serde(default)]
    ts: Option<f64>,
}

impl<'a> Fields<'a> {
    /// The fields of a JSON object; `None` if `json` is not one.
    pub(super) fn of(json: &'a str) -> Option<Self> {
        // serde would read a struct from an array too: only an object here.
        if !json.trim_start().starts_with('{') {
            return None;
        }
        if let Ok(fields) = serde_json::from_str::<BorrowedFields>(json) {
            return Some(Self {
                kind: fields.kind,
                alertname: fields.alertname,
                ts: fields.ts.unwrap_or(0.0),
            });
        }
        // A field of another type, a key twice: the full parse decides.
        let Ok(Value::Object(event)) = serde_json::from_str::<Value>(json) else {
            return None;
        };
        let field = |key: &str| {
            event
                .get(key)
                .and_then(Value::as_str)
                .map(|s| Cow::Owned(s.to_owned()))
        };
        Some(Self {
            kind: field("kind"),
            alertname: field("alertname"),
            ts: event.get("ts").and_then(Value::as_f64).unwrap_or(0.0),
        })
    }
}

/// `needle` in `haystack`, ASCII letters compared without case.
fn contains_ascii_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    let (lower, upper) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    memchr::memchr2_iter(lower, upper, haystack).any(|at| {
        haystack
            .get(at..at + needle.len())
            .is_some_and(|window| window.eq_ignore_ascii_case(needle))
    })
}

/// What [`AuditFilter::check`] made of a line.
enum Checked {
    /// The event matches: its line as written.
    Match(Box<RawValue>),
    /// Not a match (or not a JSON event).
    NoMatch,
    /// Older than `since`: in a trail written in time order, so is everything before it.
    TooOld,
}

/// How a line is checked for kind and alertname.
pub(super) struct Looks {
    /// Looked for in its bytes first, as this host writes them: only in a
    /// scan of the file (a line from elsewhere, with a key twice or nested,
    /// can fool a byte look; the index reads them as a parse does).
    bytes: bool,
    /// Checked by a parse: not where the index has decided them.
    fields: bool,
    /// The alertname as the writer puts it in a line (serde_json's escaping).
    alertname: Option<Vec<u8>>,
}

impl AuditFilter {
    /// The looks for a scan of the file.
    pub(super) fn scan_looks(&self) -> Looks {
        let alertname = self.alertname.as_ref().map(|name| {
            let mut needle = b"\"alertname\":".to_vec();
            serde_json::to_writer(&mut needle, name).expect("a string serializes");
            needle
        });
        Looks {
            bytes: true,
            fields: true,
            alertname,
        }
    }

    /// The looks for a line the index proposes: kind and alertname are
    /// decided when its kind id is exact, else its parse decides.
    pub(super) fn index_looks(&self, decided: bool) -> Looks {
        Looks {
            bytes: false,
            fields: !decided,
            alertname: None,
        }
    }

    /// One line against the filter: the byte-level look, then a parse
    /// that checks the line is JSON and keeps it as written, then the
    /// fields the filter needs (only those).
    fn check(&self, line: &[u8], looks: &Looks) -> Checked {
        if !self.may_match(line, looks) {
            return Checked::NoMatch;
        }
        let Some(event) = as_written(line) else {
            return Checked::NoMatch;
        };
        let by_fields =
            self.since.is_some() || (looks.fields && (!self.kinds.is_empty() || self.alertname.is_some()));
        // A JSON value that is not an object has none of them.
        let fields = by_fields.then(|| Fields::of(event.get()).unwrap_or_default());
        if let (Some(since), Some(fields)) = (self.since, &fields)
            && fields.ts < since
        {
            return Checked::TooOld;
        }
        let fields = fields.as_ref().filter(|_| looks.fields);
        if self.matches(line, fields) {
            Checked::Match(event)
        } else {
            Checked::NoMatch
        }
    }
}

/// The newest `n` events matching a filter, gathered from lines offered
/// newest first (by a scan of the file or by the index).
pub(super) struct Tail<'f> {
    filter: &'f AuditFilter,
    n: usize,
    found: Vec<Box<RawValue>>,
    /// Full, or a line older than `since` was offered: nothing further
    /// back (in an older segment either) is wanted.
    stopped: bool,
}

impl<'f> Tail<'f> {
    pub(super) fn new(filter: &'f AuditFilter, n: usize) -> Self {
        Self {
            filter,
            n,
            found: Vec::new(),
            stopped: false,
        }
    }

    /// Whether nothing older is wanted.
    pub(super) fn stopped(&self) -> bool {
        self.stopped
    }

    /// How many more events are wanted.
    pub(super) fn missing(&self) -> usize {
        self.n.saturating_sub(self.found.len())
    }

    /// The next line, newest first: `Break` once the tail is full or the
    /// line is older than `since` (the trail is written in time order:
    /// nothing older can match).
    pub(super) fn offer(&mut self, line: &[u8], looks: &Looks) -> ControlFlow<()> {
        let offered = self.offer_one(line, looks);
        self.stopped |= offered.is_break();
        offered
    }

    fn offer_one(&mut self, line: &[u8], looks: &Looks) -> ControlFlow<()> {
        if let Some(since) = self.filter.since
            && line_ts(line).is_some_and(|ts| ts < since)
        {
            return ControlFlow::Break(());
        }
        match self.filter.check(line, looks) {
            Checked::Match(event) => self.found.push(event),
            Checked::NoMatch => {}
            Checked::TooOld => return ControlFlow::Break(()),
        }
        if self.missing() == 0 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    /// The events found, oldest first.
    pub(super) fn into_events(mut self) -> Vec<Box<RawValue>> {
        self.found.reverse();
        self.found
    }
}

/// The newest `n` events matching `filter`, oldest first. Lines that are not
/// JSON objects (damage from outside the host) are skipped. Only lines that
/// pass a byte-level look (kind, alertname, `contains`, `ts`) are parsed.
pub fn read_tail(path: &Path, filter: &AuditFilter, n: usize) -> io::Result<Vec<Value>> {
    let lines = read_tail_as_written(path, filter, n)?;
    // Each line was checked as this parse checks it: none is dropped here.
    Ok(lines
        .iter()
        .filter_map(|line| serde_json::from_str(line.get()).ok())
        .collect())
}

/// [`read_tail`], each event as its line was written (`GET /audit` sends
/// them on without parsing them into values and writing them out again).
pub fn read_tail_as_written(path: &Path, filter: &AuditFilter, n: usize) -> io::Result<Vec<Box<RawValue>>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut tail = Tail::new(filter, n);
    let (live, segments) = {
        let _gate = segments::gate_read();
        (open_if_exists(path)?, segments::open_all(path)?)
    };
    if let Some(live) = live {
        // Whether it stopped is in the tail.
        let _ = offer_backwards(&mut tail, filter, |visit| file_regions_backwards(&live, visit))?;
    }
    if !tail.stopped() {
        offer_segments(&mut tail, filter, &segments)?;
    }
    Ok(tail.into_events())
}

/// Offers the lines of rolled segments to `tail`, newest first, as
/// [`read_tail_as_written`] does.
pub(super) fn offer_segments(
    tail: &mut Tail,
    filter: &AuditFilter,
    segments: &[segments::OpenSegment],
) -> io::Result<()> {
    for segment in segments {
        if offer_backwards(tail, filter, |visit| segment.regions_backwards(visit))?.is_break() {
            break;
        }
    }
    Ok(())
}

/// Offers the lines of the regions `regions` visits (newest first) to
/// `tail`, after the byte-level looks: a `contains` is searched for over
/// whole regions at once when it can be (ASCII, no `since`).
fn offer_backwards(
    tail: &mut Tail,
    filter: &AuditFilter,
    regions: impl FnOnce(&mut dyn FnMut(&[u8]) -> ControlFlow<()>) -> io::Result<ControlFlow<()>>,
) -> io::Result<ControlFlow<()>> {
    let looks = filter.scan_looks();
    let mut visit = |line: &[u8]| tail.offer(line, &looks);
    // With `since`, each line's time bounds the scan: the line by line look
    // stops at the first older line, which a search over a region would not.
    let region_search = filter
        .contains
        .as_deref()
        .filter(|text| text.is_ascii() && !text.is_empty() && filter.since.is_none());
    match region_search {
        Some(text) => {
            let search = RegionSearch::new(text);
            regions(&mut |region| search.visit_region(region, &mut visit))
        }
        None => regions(&mut |region| visit_lines_backwards(region, &mut visit)),
    }
}

/// `contains` searched for over a whole region of lines at once, so that a
/// text found in few lines costs one pass over the bytes, not a look at
/// each line.
struct RegionSearch {
    /// The text, lowercase.
    finder: memchr::memmem::Finder<'static>,
    /// The region, lowercase (reused).
    lowered: std::cell::RefCell<Vec<u8>>,
}

impl RegionSearch {
    fn new(text: &str) -> Self {
        Self {
            finder: memchr::memmem::Finder::new(text.to_ascii_lowercase().as_bytes()).into_owned(),
            lowered: Default::default(),
        }
    }

    /// Visits the lines of `region` that hold the text, newest first; every
    /// line when the region is not ASCII (Unicode case folding can map
    /// other bytes to ASCII letters: the line's own check decides).
    fn visit_region(
        &self,
        region: &[u8],
        visit: &mut impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if !region.is_ascii() {
            return visit_lines_backwards(region, visit);
        }
        let lines = region.strip_suffix(b"\n").unwrap_or(region);
        let mut lowered = self.lowered.borrow_mut();
        lowered.clear();
        lowered.extend(lines.iter().map(u8::to_ascii_lowercase));
        // Each hit's line, once, newest last.
        let mut hits: Vec<(usize, usize)> = Vec::new();
        let mut from = 0;
        while let Some(at) = self.finder.find(&lowered[from..]).map(|at| from + at) {
            let start = memchr::memrchr(b'\n', &lines[..at]).map_or(0, |newline| newline + 1);
            let end = memchr::memchr(b'\n', &lines[at..]).map_or(lines.len(), |newline| at + newline);
            hits.push((start, end));
            from = end;
        }
        drop(lowered);
        for &(start, end) in hits.iter().rev() {
            visit(&lines[start..end])?;
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_its_kind_and_time_without_a_parse() {
        let line = br#"{"alertname":"A","detail":"kind\":\"action_ok\", ts\":1","id":7,"kind":"decision_skip","ts":1796223724.39}"#;
        assert!(line_has_kind(line, &["action_started", "decision_skip"]));
        assert!(
            !line_has_kind(line, &["action_ok"]),
            "a quoted kind inside a string is escaped"
        );
        assert_eq!(line_ts(line), Some(1796223724.39));
        assert_eq!(line_ts(br#"{"id":1}"#), None);
        assert!(line_has_field(line, "alertname"));
        assert!(!line_has_field(line, "queued_at"));
        assert!(
            !line_has_field(br#"{"detail":"queued_at\":1"}"#, "queued_at"),
            "a quoted field name inside a string is escaped"
        );
    }

    #[test]
    fn the_byte_look_before_a_parse_keeps_every_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let lines = [
            r#"{"alertname":"Disk \"full\"","id":1,"kind":"decision_skip","ts":10.0}"#,
            r#"{"alertname":"Other","detail":"alertname Disk","id":2,"kind":"action_ok","ts":20.0}"#,
            r#"{"alertname":"CrmDown","detail":"Restarted CRM-API","id":3,"kind":"action_ok","ts":30.0}"#,
            // U+212A KELVIN SIGN folds to an ASCII "k".
            r#"{"alertname":"X","detail":"Kelvin","id":4,"kind":"action_ok","ts":40.0}"#,
        ];
        let spaced =
            r#"{"ts": 50.0, "kind": "action_ok", "alertname": "CrmDown", "cmd": "docker restart crm-api"}"#;
        std::fs::write(&path, lines.join("\n") + "\n" + spaced + "\n").unwrap();
        let ids = |filter: AuditFilter| -> Vec<u64> {
            read_tail(&path, &filter, 10)
                .unwrap()
                .iter()
                .map(|e| e["id"].as_u64().unwrap())
                .collect()
        };
        let alertname = |name: &str| AuditFilter {
            alertname: Some(name.to_owned()),
            ..AuditFilter::default()
        };
        let contains = |text: &str| AuditFilter {
            contains: Some(text.to_owned()),
            ..AuditFilter::default()
        };
        assert_eq!(ids(alertname("Disk \"full\"")), [1]);
        assert_eq!(ids(alertname("Disk")), Vec::<u64>::new());
        let alertnames = |filter: AuditFilter| -> Vec<String> {
            read_tail(&path, &filter, 10)
                .unwrap()
                .iter()
                .map(|e| e["alertname"].as_str().unwrap().to_owned())
                .collect()
        };
        // The original system's line (spaces, no id) is found by kind and alertname too.
        assert_eq!(alertnames(alertname("CrmDown")), ["CrmDown", "CrmDown"]);
        assert_eq!(alertnames(contains("crm-api")), ["CrmDown", "CrmDown"]);
        assert_eq!(ids(contains("KELVIN")), [4], "Unicode case folding still decides");
        let kinds_since = AuditFilter {
            kinds: vec!["action_ok".into()],
            since: Some(25.0),
            ..AuditFilter::default()
        };
        assert_eq!(alertnames(kinds_since), ["CrmDown", "X", "CrmDown"]);
    }

    #[test]
    fn a_line_is_sent_as_written_only_if_a_value_parse_accepts_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let lines = [
            r#"{"id":1,"kind":"k","note":"caf\u00e9","ts":1}"#.to_owned(),
            format!(r#"{{"id":2,"deep":{deep},"ts":2}}"#),
            r#"{"id":3,"n":1e400,"ts":3}"#.to_owned(),
            r#"{"id":4,"s":"\ud800","ts":4}"#.to_owned(),
            r#"{"id":5,"kind":"k", "ts":5} "#.to_owned(),
        ];
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let all = AuditFilter::default();
        let written: Vec<String> = read_tail_as_written(&path, &all, 10)
            .unwrap()
            .iter()
            .map(|line| line.get().to_owned())
            .collect();
        // Too deep, out of range, a lone surrogate: a Value parse refuses them.
        assert_eq!(written, [lines[0].as_str(), lines[4].trim_end()]);
        let ids: Vec<u64> = read_tail(&path, &all, 10)
            .unwrap()
            .iter()
            .map(|e| e["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, [1, 5]);
    }

    #[test]
    fn contains_searched_over_many_reads_finds_what_each_line_would() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        // Eight reads' worth of lines; one in seven holds the text in some
        // case, one region has a non-ASCII line, one line is longer than a read.
        let mut text = String::new();
        let mut expected = Vec::new();
        for id in 1..=8000u64 {
            let note = match id {
                _ if id % 7 == 0 => "Disk FULL on /var",
                // The Kelvin sign folds to `k`: found only by the Unicode look.
                4001 => "DIS\u{212A} FULL",
                _ => "nothing to see",
            };
            let pad = if id == 5000 {
                "x".repeat(2 * CHUNK as usize)
            } else {
                String::new()
            };
            text.push_str(&format!(
                "{{\"id\":{id},\"kind\":\"k\",\"note\":\"{note}{pad}\",\"ts\":{id}}}\n"
            ));
            if id % 7 == 0 || id == 4001 {
                expected.push(id);
            }
        }
        std::fs::write(&path, text).unwrap();
        let ids = |text: &str, n: usize| -> Vec<u64> {
            let filter = AuditFilter {
                contains: Some(text.to_owned()),
                ..AuditFilter::default()
            };
            read_tail(&path, &filter, n)
                .unwrap()
                .iter()
                .map(|e| e["id"].as_u64().unwrap())
                .collect()
        };
        assert_eq!(ids("disk full", 5000), expected);
        assert_eq!(ids("DISK FULL", 3), expected[expected.len() - 3..]);
        assert_eq!(ids("no such text", 5000), Vec::<u64>::new());
        // Only the per-line look across lines: the text never spans two.
        let on_var: Vec<u64> = expected.iter().copied().filter(|&id| id != 4001).collect();
        assert_eq!(ids("var\",\"ts", 5000), on_var);
        assert_eq!(ids("}\n{", 5000), Vec::<u64>::new());
    }

    #[test]
    fn lines_longer_than_a_read_come_back_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let huge = "b".repeat(3 * CHUNK as usize + 17);
        std::fs::write(&path, format!("a\n{huge}\nc\n{}", "torn".repeat(CHUNK as usize))).unwrap();
        let mut seen = Vec::new();
        scan_backwards(&path, |line| {
            seen.push(String::from_utf8(line.to_vec()).unwrap());
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(seen, ["c".to_owned(), huge, "a".to_owned()]);
    }

    fn lines_backwards(content: &[u8]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        std::fs::write(&path, content).unwrap();
        let mut out = Vec::new();
        scan_backwards(&path, |l| {
            out.push(String::from_utf8(l.to_vec()).unwrap());
            ControlFlow::Continue(())
        })
        .unwrap();
        out
    }

    #[test]
    fn visits_complete_lines_newest_first_and_skips_unterminated_tail() {
        assert_eq!(lines_backwards(b"a\nbb\nccc\n"), ["ccc", "bb", "a"]);
        assert_eq!(lines_backwards(b"a\nbb\ncc"), ["bb", "a"]);
        assert_eq!(lines_backwards(b"partial"), Vec::<String>::new());
        assert_eq!(lines_backwards(b""), Vec::<String>::new());
    }

    #[test]
    fn lines_longer_than_a_chunk_survive_chunk_boundaries() {
        let long = "x".repeat(CHUNK as usize * 2 + 17);
        let content = format!("first\n{long}\nlast\n{long}");
        assert_eq!(
            lines_backwards(content.as_bytes()),
            ["last", long.as_str(), "first"]
        );
        let content = format!("{long}\nshort\n");
        assert_eq!(lines_backwards(content.as_bytes()), ["short", long.as_str()]);
    }
}
