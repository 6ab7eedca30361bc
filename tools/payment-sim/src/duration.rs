//! A tiny parser for the `--ramp` flag: `90`, `90s`, `2m`, `1h`, `500ms`, `1.5m`.

use std::time::Duration;

/// A duration that is not a non-negative number followed by `ms`, `s`, `m` or `h`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {0:?}: expected a number of seconds or a number with a unit ms, s, m or h (e.g. 30s, 2m)"
)]
pub struct ParseDurationError(pub String);

/// Parses `30s`, `2m`, `1h`, `500ms` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, ParseDurationError> {
    let err = || ParseDurationError(text.to_owned());
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let seconds_per_unit = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" | "mins" => 60.0,
        "h" => 3600.0,
        _ => return Err(err()),
    };
    let value: f64 = number.parse().map_err(|_| err())?;
    Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let cases = [
            ("30s", 30_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("500ms", 500),
            ("90", 90_000),
            ("1.5m", 90_000),
            (" 0s ", 0),
            ("10 s", 10_000),
        ];
        for (text, millis) in cases {
            assert_eq!(parse_duration(text), Ok(Duration::from_millis(millis)), "{text}");
        }
    }

    #[test]
    fn rejects_the_rest() {
        for text in ["", "s", "-5s", "5x", "1d", "1e3", "abc", "1.2.3s"] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.to_string().contains("30s, 2m"), "{err}");
        }
    }
}
