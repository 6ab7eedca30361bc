//! `[limits] max_actions` and `max_actions_all_keys`: repeat caps, each
//! `COUNT/DURATION` ("3 an hour and 7 a day" is `["3/1h", "7/1d"]`). A
//! remediation that keeps being needed is not working: past a cap, a
//! person must look, and the host stops acting (see the host's
//! `remediation::repeat_cap`).

use std::fmt;
use std::time::Duration;

use autoheal_core::util::parse_duration;

/// The longest window a cap may count over: the host reads the trail back
/// that far at start, and etcd keeps each counted action that long.
pub const MAX_REPEAT_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// At most `count` actions in any `window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepeatCap {
    /// How many actions the window may hold.
    pub count: u32,
    /// How far back they are counted.
    pub window: Duration,
    /// The entry as written (trimmed), e.g. `3/1h`: what events, notices
    /// and the detail of a skip name, so a person finds it in the manifest.
    text: String,
}

impl RepeatCap {
    /// The entry as written, e.g. `3/1h`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The window as a human duration, e.g. `1h`.
    pub fn window_text(&self) -> String {
        humantime_like(self.window)
    }
}

impl fmt::Display for RepeatCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The window as written after the `/` would be ambiguous to print back
/// (`60m` and `1h` are one window); a canonical form reads the same for both.
fn humantime_like(window: Duration) -> String {
    let secs = window.as_secs();
    match secs {
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The caps of key `key` (for its errors): each entry parsed, none zero,
/// no window twice (two counts for one window are a mistake: only the
/// smaller could ever stop anything). Sorted by window, shortest first, so
/// that the first cap reached is the one people see first.
pub(crate) fn parse_caps(key: &str, entries: &[String]) -> Result<Vec<RepeatCap>, String> {
    let mut caps: Vec<RepeatCap> = Vec::with_capacity(entries.len());
    for entry in entries {
        let cap = parse_cap(entry).map_err(|why| format!("key `{key}`: {entry:?} {why}"))?;
        if let Some(same) = caps.iter().find(|c| c.window == cap.window) {
            return Err(format!(
                "key `{key}`: {entry:?} and {:?} count over the same window; keep one",
                same.text
            ));
        }
        caps.push(cap);
    }
    caps.sort_by_key(|c| c.window);
    Ok(caps)
}

fn parse_cap(entry: &str) -> Result<RepeatCap, String> {
    let text = entry.trim();
    let Some((count, window)) = text.split_once('/') else {
        return Err("must be COUNT/DURATION, e.g. \"3/1h\"".into());
    };
    let count: u32 = count
        .trim()
        .parse()
        .map_err(|_| format!("must be COUNT/DURATION: {:?} is not a count", count.trim()))?;
    if count == 0 {
        return Err("counts no action at all: a count of 0 would never let the plugin act".into());
    }
    let window = parse_duration(window).map_err(|e| e.to_string())?;
    if window.is_zero() {
        return Err("has a window of 0, in which nothing can be counted".into());
    }
    if window > MAX_REPEAT_WINDOW {
        return Err("counts over more than 7 days".into());
    }
    Ok(RepeatCap {
        count,
        window,
        text: text.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(entries: &[&str]) -> Result<Vec<RepeatCap>, String> {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        parse_caps("limits.max_actions", &entries)
    }

    #[test]
    fn entries_parse_sorted_by_window_and_print_as_written() {
        let parsed = caps(&["7/1d", " 3/1h "]).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(
            (parsed[0].count, parsed[0].window),
            (3, Duration::from_secs(3600))
        );
        assert_eq!(parsed[0].to_string(), "3/1h");
        assert_eq!(
            (parsed[1].count, parsed[1].window),
            (7, Duration::from_secs(86400))
        );
        assert_eq!(parsed[1].window_text(), "1d");
        assert_eq!(caps(&["2/90m"]).unwrap()[0].window_text(), "90m");
        assert!(caps(&[]).unwrap().is_empty(), "empty: no cap");
    }

    #[test]
    fn a_bad_entry_is_named_with_its_key_and_why() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["0/1h"], &["\"0/1h\"", "count of 0"]),
            (&["3/0s"], &["\"3/0s\"", "window of 0"]),
            (&["3"], &["COUNT/DURATION"]),
            (&["x/1h"], &["\"x\" is not a count"]),
            (&["-1/1h"], &["not a count"]),
            (&["3/soon"], &["soon"]),
            (&["3/8d"], &["7 days"]),
            (&["3/1h", "5/60m"], &["\"5/60m\"", "\"3/1h\"", "same window"]),
            (&["3/1h", "3/1h"], &["same window"]),
        ];
        for (entries, words) in cases {
            let err = caps(entries).unwrap_err();
            assert!(err.starts_with("key `limits.max_actions`"), "{err}");
            for word in *words {
                assert!(err.contains(word), "{entries:?}: {err:?} lacks {word:?}");
            }
        }
    }
}
