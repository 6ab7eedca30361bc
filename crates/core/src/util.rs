//! Small helpers every crate of the workspace uses: the clock, hashing,
//! durations as operators write them, and error chains on one line.

use std::time::Duration;

use sha2::{Digest, Sha256};

/// Current wall-clock time as unix seconds.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// SHA-256 of `bytes`, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Text that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a duration like 30m, 2h or 1d: {reason}")]
pub struct DurationError {
    /// What was given.
    pub text: String,
    /// What the parser said about it.
    pub reason: String,
}

/// `10m`, `2h`, `1d`, `90s`, `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    humantime::parse_duration(text.trim()).map_err(|e| DurationError {
        text: text.to_owned(),
        reason: e.to_string(),
    })
}

/// A span of seconds as people say it: `42s`, `5m`, `3h 2m`, `2d 4h`.
pub fn age_text(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// `text` cut to at most `max` bytes (on a character boundary) with a
/// marker that says how long it was; `None` when it already fits.
pub fn truncate_with_marker(text: &str, max: usize) -> Option<String> {
    if text.len() <= max {
        return None;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Some(format!(
        "{}… [truncated: {} bytes, {} kept]",
        &text[..cut],
        text.len(),
        cut
    ))
}

/// An error and its causes on one line, `outer: inner: innermost` (the
/// useful part of a wasmtime or HTTP client error is often in the causes).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_a_person_would_say_them() {
        assert_eq!(age_text(42.4), "42s");
        assert_eq!(age_text(300.0), "5m");
        assert_eq!(age_text(3.0 * 3600.0 + 125.0), "3h 2m");
        assert_eq!(age_text(2.0 * 86400.0 + 4.0 * 3600.0), "2d 4h");
        assert_eq!(age_text(-5.0), "0s");
    }

    #[test]
    fn truncation_keeps_a_prefix_on_a_char_boundary_and_says_so() {
        assert_eq!(truncate_with_marker("short", 10), None);
        let cut = truncate_with_marker("ééééé", 5).unwrap();
        assert_eq!(cut, "éé… [truncated: 10 bytes, 4 kept]");
    }
}
