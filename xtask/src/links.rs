//! The documentation's link check, run by `cargo xtask lint`: every relative
//! link in the README, ARCHITECTURE.md, BENCHMARKS.md and `docs/**/*.md` must
//! name a file that exists, and its `#anchor` a heading of that page as GitHub
//! names it. The reference moved out of the README into `docs/`; this keeps a
//! renamed heading or a moved page from leaving links that lead nowhere.
//!
//! Plain Rust on purpose: a Markdown parser or a link checker from crates.io
//! would be one more thing to build on every machine that lints. It reads the
//! subset of Markdown these pages use (ATX and setext headings, inline links
//! and images, reference definitions, fenced code, code spans).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The pages checked, relative to the repository root; `docs/` is walked.
const TOP_LEVEL_PAGES: &[&str] = &[
    "README.md",
    "ARCHITECTURE.md",
    "BENCHMARKS.md",
    "plugins/README.md",
    "monitoring/README.md",
];
const DOCS_DIR: &str = "docs";

/// A link that leads nowhere, named the way the lint prints it.
#[derive(Debug, PartialEq)]
pub struct BrokenLink {
    /// The page holding the link, relative to the root.
    pub file: String,
    /// 1-based line of the link's destination.
    pub line: usize,
    pub link: String,
    pub problem: String,
}

impl std::fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}: {}", self.file, self.line, self.link, self.problem)
    }
}

/// Checks every page under `root`; the error lists each broken link on a line
/// of its own.
pub fn check(root: &Path) -> Result<(), String> {
    let broken = broken_links(root, &pages(root)?)?;
    if broken.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = broken.iter().map(ToString::to_string).collect();
    Err(format!(
        "{} broken link(s) in the documentation:\n{}",
        broken.len(),
        lines.join("\n")
    ))
}

/// The pages to check: the top-level ones, then every `.md` under `docs/`.
fn pages(root: &Path) -> Result<Vec<PathBuf>, String> {
    let mut pages: Vec<PathBuf> = TOP_LEVEL_PAGES
        .iter()
        .map(PathBuf::from)
        .filter(|page| root.join(page).is_file())
        .collect();
    let mut docs = Vec::new();
    markdown_under(root, Path::new(DOCS_DIR), &mut docs)?;
    docs.sort();
    pages.extend(docs);
    Ok(pages)
}

fn markdown_under(root: &Path, dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), String> {
    let full = root.join(dir);
    if !full.is_dir() {
        return Ok(());
    }
    let entries = std::fs::read_dir(&full).map_err(|e| format!("{}: {e}", full.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", full.display()))?;
        let relative = dir.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", relative.display()))?;
        if kind.is_dir() {
            markdown_under(root, &relative, found)?;
        } else if relative.extension().is_some_and(|ext| ext == "md") {
            found.push(relative);
        }
    }
    Ok(())
}

/// The broken links of `pages` (paths relative to `root`), in page order.
pub fn broken_links(root: &Path, pages: &[PathBuf]) -> Result<Vec<BrokenLink>, String> {
    // Anchors of each target page, read once however many links point at it.
    let mut anchors_of: HashMap<PathBuf, Option<BTreeSet<String>>> = HashMap::new();
    let mut broken = Vec::new();
    for page in pages {
        let text =
            std::fs::read_to_string(root.join(page)).map_err(|e| format!("{}: {e}", page.display()))?;
        for link in links(&text) {
            if let Some(problem) = problem_with(root, page, &link.target, &mut anchors_of) {
                broken.push(BrokenLink {
                    file: page.display().to_string(),
                    line: link.line,
                    link: link.target,
                    problem,
                });
            }
        }
    }
    Ok(broken)
}

/// Why `target`, linked from `page`, leads nowhere; `None` when it resolves
/// or is not ours to check (a URL with a scheme).
fn problem_with(
    root: &Path,
    page: &Path,
    target: &str,
    anchors_of: &mut HashMap<PathBuf, Option<BTreeSet<String>>>,
) -> Option<String> {
    if has_scheme(target) || target.starts_with("//") {
        return None;
    }
    let (path, fragment) = match target.split_once('#') {
        Some((path, fragment)) => (path, Some(fragment)),
        None => (target, None),
    };
    let path = percent_decoded(path);
    let resolved = if path.is_empty() {
        page.to_owned()
    } else if let Some(from_root) = path.strip_prefix('/') {
        // GitHub reads a leading `/` as the repository's root.
        normalised(Path::new(from_root))
    } else {
        normalised(&page.parent().unwrap_or(Path::new("")).join(&path))
    };
    let full = root.join(&resolved);
    if !full.exists() {
        return Some(format!("{} does not exist", resolved.display()));
    }
    let fragment = fragment.filter(|fragment| !fragment.is_empty())?;
    // Only a Markdown page's anchors are known here (a source file's `#L10`
    // is GitHub's, not a heading).
    if full.extension().is_none_or(|ext| ext != "md") {
        return None;
    }
    let anchors = anchors_of
        .entry(resolved.clone())
        .or_insert_with(|| std::fs::read_to_string(&full).ok().map(|text| anchors(&text)));
    let Some(anchors) = anchors else {
        return Some(format!("{} cannot be read", resolved.display()));
    };
    let fragment = percent_decoded(fragment);
    if anchors.contains(&fragment) {
        None
    } else {
        Some(format!(
            "no heading of {} has the anchor #{fragment}",
            resolved.display()
        ))
    }
}

/// `a/./b/../c` as `a/c`, without asking the filesystem.
fn normalised(path: &Path) -> PathBuf {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir if parts.last().is_some_and(|last| *last != "..") => {
                parts.pop();
            }
            other => parts.push(other.as_os_str()),
        }
    }
    parts.iter().collect()
}

fn has_scheme(target: &str) -> bool {
    let Some((scheme, _)) = target.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// `%XX` escapes decoded (`my%20page.md`); anything malformed is kept as written.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

/// One link's destination and the line it is on.
#[derive(Debug, PartialEq)]
pub struct Link {
    pub line: usize,
    pub target: String,
}

/// The link destinations of a page: inline links and images (`[text](dest)`,
/// `![alt](dest "title")`) and reference definitions (`[name]: dest`),
/// outside fenced code and code spans.
pub fn links(text: &str) -> Vec<Link> {
    let mut found = Vec::new();
    for paragraph in paragraphs(text) {
        let prose = without_code_spans(&paragraph.text);
        for (offset, _) in prose.match_indices("](") {
            let start = offset + 2;
            if let Some(target) = destination(&prose[start..]) {
                found.push(Link {
                    line: paragraph.first_line + prose[..start].matches('\n').count(),
                    target,
                });
            }
        }
        for (index, line) in prose.lines().enumerate() {
            if let Some(target) = reference_definition(line) {
                found.push(Link {
                    line: paragraph.first_line + index,
                    target,
                });
            }
        }
    }
    found.sort_by_key(|link| link.line);
    found
}

/// Consecutive lines outside fenced code, split at blank lines (a code span
/// may run over a line break, never over a blank line).
struct Paragraph {
    first_line: usize,
    text: String,
}

fn paragraphs(text: &str) -> Vec<Paragraph> {
    let mut paragraphs = Vec::new();
    let mut current: Option<Paragraph> = None;
    let mut fence: Option<(char, usize)> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let is_fence = fence_of(line);
        if let Some((fence_char, fence_len)) = fence {
            if is_fence.is_some_and(|(c, len)| c == fence_char && len >= fence_len)
                && line.trim_start().trim_start_matches(fence_char).trim().is_empty()
            {
                fence = None;
            }
            continue;
        }
        if is_fence.is_some() || line.trim().is_empty() {
            paragraphs.extend(current.take());
            fence = is_fence;
            continue;
        }
        match &mut current {
            Some(paragraph) => {
                paragraph.text.push('\n');
                paragraph.text.push_str(line);
            }
            None => {
                current = Some(Paragraph {
                    first_line: number,
                    text: line.to_owned(),
                })
            }
        }
    }
    paragraphs.extend(current);
    paragraphs
}

/// The fence a line opens or closes (```` ``` ```` or `~~~`, at most three
/// spaces in), with its length.
fn fence_of(line: &str) -> Option<(char, usize)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let fence_char = rest.chars().next().filter(|c| matches!(c, '`' | '~'))?;
    let len = rest.chars().take_while(|c| *c == fence_char).count();
    (len >= 3).then_some((fence_char, len))
}

/// The text with each code span's content blanked (line breaks kept, so
/// offsets still give line numbers). A run of backticks with no closing run
/// of the same length is literal text, as in CommonMark.
fn without_code_spans(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'`' {
            let next = text[i..].find('`').map_or(text.len(), |n| i + n);
            out.push_str(&text[i..next]);
            i = next;
            continue;
        }
        let run = bytes[i..].iter().take_while(|b| **b == b'`').count();
        let after = i + run;
        match closing_run(&text[after..], run) {
            Some(end) => {
                for c in text[i..after + end + run].chars() {
                    out.push(if c == '\n' { '\n' } else { ' ' });
                }
                i = after + end + run;
            }
            None => {
                out.push_str(&text[i..after]);
                i = after;
            }
        }
    }
    out
}

/// Where a run of exactly `run` backticks starts in `text`.
fn closing_run(text: &str, run: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            let len = bytes[i..].iter().take_while(|b| **b == b'`').count();
            if len == run {
                return Some(i);
            }
            i += len;
        } else {
            i += 1;
        }
    }
    None
}

/// The destination at the start of an inline link's parentheses: `<dest>`,
/// or up to whitespace or the unbalanced `)`.
fn destination(after_paren: &str) -> Option<String> {
    let rest = after_paren.trim_start();
    if let Some(bracketed) = rest.strip_prefix('<') {
        return bracketed.find('>').map(|end| bracketed[..end].to_owned());
    }
    let mut depth = 0usize;
    for (index, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(rest[..index].to_owned()).filter(|d| !d.is_empty()),
            ')' => depth -= 1,
            c if c.is_whitespace() => {
                return Some(rest[..index].to_owned()).filter(|d| !d.is_empty());
            }
            _ => {}
        }
    }
    None
}

/// `[name]: dest` at the start of a line (at most three spaces in).
fn reference_definition(line: &str) -> Option<String> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = line[indent..].strip_prefix('[')?;
    let (label, after) = rest.split_once("]:")?;
    if label.is_empty() || label.starts_with('^') {
        // `[^1]:` is a footnote, not a link.
        return None;
    }
    after.split_whitespace().next().map(str::to_owned)
}

/// The anchors GitHub gives a page's headings, repeated ones numbered.
pub fn anchors(text: &str) -> BTreeSet<String> {
    let mut slugger = Slugger::default();
    headings(text)
        .iter()
        .map(|heading| slugger.slug(heading))
        .collect()
}

/// The text of each heading, ATX (`## Text ##`) and setext (`Text` over
/// `===` or `---`), outside fenced code.
fn headings(text: &str) -> Vec<String> {
    let mut headings = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    let mut previous: Option<&str> = None;
    for line in text.lines() {
        let is_fence = fence_of(line);
        if let Some((fence_char, fence_len)) = fence {
            if is_fence.is_some_and(|(c, len)| c == fence_char && len >= fence_len) {
                fence = None;
            }
            previous = None;
            continue;
        }
        if is_fence.is_some() {
            fence = is_fence;
            previous = None;
            continue;
        }
        if let Some(heading) = atx_heading(line) {
            headings.push(heading);
            previous = None;
            continue;
        }
        let underline = line.trim_end();
        let is_underline = !underline.is_empty()
            && line.len() - line.trim_start_matches(' ').len() <= 3
            && (underline.trim_start().chars().all(|c| c == '=')
                || underline.trim_start().chars().all(|c| c == '-'));
        match previous {
            Some(text) if is_underline => {
                headings.push(text.trim().to_owned());
                previous = None;
            }
            _ => {
                let is_text = !line.trim().is_empty() && !line.trim_start().starts_with('|') && !is_underline;
                previous = is_text.then_some(line);
            }
        }
    }
    headings
}

fn atx_heading(line: &str) -> Option<String> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let level = rest.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let text = &rest[level..];
    if !text.is_empty() && !text.starts_with([' ', '\t']) {
        return None;
    }
    // A closing run of `#` after a space is not part of the text.
    let text = text.trim();
    let without_closing = text.trim_end_matches('#');
    let text = if without_closing.is_empty() || without_closing.ends_with([' ', '\t']) {
        without_closing.trim_end()
    } else {
        text
    };
    Some(text.to_owned())
}

/// GitHub's heading anchors (github-slugger): the heading's text as shown,
/// lower case, keeping letters, digits, `_` and `-`, each space a `-`; a slug
/// already given gets `-1`, `-2`, … appended.
#[derive(Default)]
pub struct Slugger {
    occurrences: HashMap<String, usize>,
}

impl Slugger {
    pub fn slug(&mut self, heading: &str) -> String {
        let original = slug(heading);
        let mut result = original.clone();
        while self.occurrences.contains_key(&result) {
            let count = self
                .occurrences
                .get_mut(&original)
                .expect("the original slug is always recorded before its numbered ones");
            *count += 1;
            result = format!("{original}-{count}");
        }
        self.occurrences.insert(result.clone(), 0);
        result
    }
}

/// One heading's slug, before repeats are numbered.
pub fn slug(heading: &str) -> String {
    shown_text(heading)
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c),
            _ => None,
        })
        .collect()
}

/// What a heading shows: code spans' text without their backticks, links'
/// text without their destinations, HTML tags dropped. (Emphasis marks are
/// punctuation, which the slug drops anyway.)
fn shown_text(heading: &str) -> String {
    let mut out = String::with_capacity(heading.len());
    let mut rest = heading;
    while let Some(c) = rest.chars().next() {
        if c == '`' {
            let run = rest.chars().take_while(|c| *c == '`').count();
            if let Some(end) = closing_run(&rest[run..], run) {
                out.push_str(&rest[run..run + end]);
                rest = &rest[run + end + run..];
                continue;
            }
            out.push_str(&rest[..run]);
            rest = &rest[run..];
            continue;
        }
        let link_open = match c {
            '[' => Some(1),
            '!' if rest[1..].starts_with('[') => Some(2),
            _ => None,
        };
        if let Some(open) = link_open
            && let Some((text, after)) = rest[open..].split_once("](")
            && let Some(close) = after.find(')')
        {
            out.push_str(&shown_text(text));
            rest = &after[close + 1..];
            continue;
        }
        if c == '<'
            && let Some(close) = rest.find('>')
            && rest[1..close].starts_with(|c: char| c.is_ascii_alphabetic() || c == '/')
        {
            rest = &rest[close + 1..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_keeps_letters_digits_underscores_and_hyphens() {
        assert_eq!(slug("How a decision is made"), "how-a-decision-is-made");
        assert_eq!(
            slug("Operations view (AetherVision): how long until the SLO breaks?"),
            "operations-view-aethervision-how-long-until-the-slo-breaks"
        );
        assert_eq!(slug("Crashes, full disks, stops"), "crashes-full-disks-stops");
        assert_eq!(slug("Replicas (etcd)"), "replicas-etcd");
        assert_eq!(slug("max_body_bytes and x-y"), "max_body_bytes-and-x-y");
    }

    #[test]
    fn slug_turns_each_space_into_a_hyphen_after_dropping_punctuation() {
        // The dropped "/" and ":" leave two spaces, so two hyphens.
        assert_eq!(slug("`GET /`: the status"), "get--the-status");
        assert_eq!(slug("Where to add …"), "where-to-add-");
        assert_eq!(slug("1. Opt-in"), "1-opt-in");
    }

    #[test]
    fn slug_reads_the_heading_as_shown() {
        assert_eq!(slug("The `[cluster]` keys"), "the-cluster-keys");
        assert_eq!(slug("See [the guide](../README.md#x) now"), "see-the-guide-now");
        assert_eq!(slug("**Bold** and *em*"), "bold-and-em");
        assert_eq!(slug("A <code>tag</code>"), "a-tag");
        assert_eq!(slug("Ünïcode Straße"), "ünïcode-straße");
    }

    #[test]
    fn repeated_headings_are_numbered_from_one() {
        let mut slugger = Slugger::default();
        assert_eq!(slugger.slug("Example"), "example");
        assert_eq!(slugger.slug("Example"), "example-1");
        assert_eq!(slugger.slug("Example"), "example-2");
        // A heading that is itself `example-1`-like does not take a number
        // already given, nor give one away twice.
        let mut slugger = Slugger::default();
        assert_eq!(slugger.slug("a-1"), "a-1");
        assert_eq!(slugger.slug("a"), "a");
        assert_eq!(slugger.slug("a"), "a-2");
    }

    #[test]
    fn anchors_come_from_atx_and_setext_headings_outside_code() {
        let page = "# Title #\n\nSetext\n======\n\n```sh\n# not a heading\n```\n\n\
                    | a |\n|---|\n\n#nospace\n## Two\n---\n";
        let expected: BTreeSet<String> = ["title", "setext", "two"].into_iter().map(String::from).collect();
        assert_eq!(anchors(page), expected);
    }

    #[test]
    fn links_skip_code_and_keep_line_numbers() {
        let page = "Intro [a](a.md) and ![img](pic.png \"title\")\n\
                    text `[not](code.md)` and `a span\nover lines [no](no.md)` [b](<b c.md>)\n\
                    \n```\n[fenced](f.md)\n```\n\n[ref]: docs/r.md#x\n[^1]: a footnote\n\
                    [c](https://example.com) [d](f(x).md)\n";
        let found: Vec<(usize, String)> = links(page)
            .into_iter()
            .map(|link| (link.line, link.target))
            .collect();
        let expected: Vec<(usize, String)> = [
            (1, "a.md"),
            (1, "pic.png"),
            (3, "b c.md"),
            (9, "docs/r.md#x"),
            (11, "https://example.com"),
            (11, "f(x).md"),
        ]
        .into_iter()
        .map(|(line, target)| (line, target.to_owned()))
        .collect();
        assert_eq!(found, expected);
    }

    /// A scratch repository under the system's temporary directory, removed
    /// when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str, files: &[(&str, &str)]) -> Scratch {
            let dir = std::env::temp_dir().join(format!("xtask-links-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            for (path, text) in files {
                let path = dir.join(path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn broken_files_and_anchors_are_named_with_their_line() {
        let scratch = Scratch::new(
            "broken",
            &[
                (
                    "README.md",
                    "# Guide\n\n[ok](docs/a.md#the-part) [dir](docs/)\n\
                     [gone](docs/missing.md)\n[bad](docs/a.md#no-such) [self](#guide)\n\
                     [here](#nowhere) [web](https://example.com/x#y) [src](src/lib.rs#L3)\n",
                ),
                ("docs/a.md", "# A\n\n## The part\n\n[up](../README.md#guide)\n"),
                ("src/lib.rs", ""),
            ],
        );
        let root = &scratch.0;
        let broken = broken_links(root, &pages(root).unwrap()).unwrap();
        let shown: Vec<String> = broken.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec![
                "README.md:4: docs/missing.md: docs/missing.md does not exist",
                "README.md:5: docs/a.md#no-such: no heading of docs/a.md has the anchor #no-such",
                "README.md:6: #nowhere: no heading of README.md has the anchor #nowhere",
            ]
        );
        let error = check(root).unwrap_err();
        assert!(error.starts_with("3 broken link(s)"), "{error}");
    }

    #[test]
    fn a_page_whose_links_all_resolve_passes() {
        let scratch = Scratch::new(
            "clean",
            &[
                ("README.md", "# R\n\n[a](docs/a.md#a) [b](/docs/sub/b.md)\n"),
                ("docs/a.md", "# A\n\n[b](sub/b.md#b-1) [r](../README.md)\n"),
                ("docs/sub/b.md", "# B\n\n## B\n\n[a](../a.md#a)\n"),
            ],
        );
        assert_eq!(check(&scratch.0), Ok(()));
    }

    /// The same check the lint runs, so that the test suite fails on a
    /// broken link too.
    #[test]
    fn the_repository_documentation_has_no_broken_links() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        if let Err(broken) = check(root) {
            panic!("{broken}");
        }
    }
}
