//! The `prometheus` capability's part of a manifest: whether the plugin may
//! query the host's Prometheus, and how long and how much one query may
//! take. Unset keys take defaults; every key has a cap, so that no manifest
//! can make one query hold the host for long or fill its memory.
//!
//! ```toml
//! [capabilities.prometheus]
//! timeout = "5s"
//! max_series = 100
//! max_bytes = 1048576
//! ```

use std::time::Duration;

use autoheal_core::util::parse_duration;
use serde::Deserialize;

/// A query's deadline when the manifest does not say.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest `timeout` may be (and never past the plugin's own deadline).
pub const MAX_QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Series answered when the manifest does not say.
pub const DEFAULT_MAX_SERIES: usize = 100;
/// The most `max_series` may be.
pub const MAX_SERIES: usize = 10_000;
/// Bytes of Prometheus' answer read when the manifest does not say.
pub const DEFAULT_QUERY_BYTES: usize = 1024 * 1024;
/// The most `max_bytes` may be.
pub const MAX_QUERY_BYTES: usize = 16 * 1024 * 1024;

/// `[capabilities.prometheus]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrometheus {
    timeout: Option<String>,
    max_series: Option<usize>,
    max_bytes: Option<usize>,
}

/// What the `prometheus` capability allows a plugin, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrometheusGrant {
    /// One query's deadline.
    pub timeout: Duration,
    /// Series answered; past it the answer is `truncated`.
    pub max_series: usize,
    /// Bytes of Prometheus' answer read; past it reading stops and the
    /// series read whole so far are answered, `truncated`.
    pub max_bytes: usize,
}

impl Default for PrometheusGrant {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_QUERY_TIMEOUT,
            max_series: DEFAULT_MAX_SERIES,
            max_bytes: DEFAULT_QUERY_BYTES,
        }
    }
}

/// Validates `[capabilities.prometheus]`; a query must end within
/// `plugin_timeout`, the plugin's deadline.
pub(crate) fn grant(raw: &RawPrometheus, plugin_timeout: Duration) -> Result<PrometheusGrant, String> {
    let key = |k: &str| format!("key `capabilities.prometheus.{k}`");
    let timeout = match &raw.timeout {
        None => DEFAULT_QUERY_TIMEOUT.min(plugin_timeout),
        Some(text) => parse_duration(text).map_err(|e| format!("{}: {e}", key("timeout")))?,
    };
    if timeout.is_zero() || timeout > MAX_QUERY_TIMEOUT || timeout > plugin_timeout {
        return Err(format!(
            "{}: {} must be more than 0, at most {} and within the plugin's `limits.timeout_ms` ({} ms)",
            key("timeout"),
            humantime::format_duration(timeout),
            humantime::format_duration(MAX_QUERY_TIMEOUT),
            plugin_timeout.as_millis()
        ));
    }
    let max_series = raw.max_series.unwrap_or(DEFAULT_MAX_SERIES);
    if max_series == 0 || max_series > MAX_SERIES {
        return Err(format!(
            "{}: {max_series} must be between 1 and {MAX_SERIES}",
            key("max_series")
        ));
    }
    let max_bytes = raw.max_bytes.unwrap_or(DEFAULT_QUERY_BYTES);
    if !(1024..=MAX_QUERY_BYTES).contains(&max_bytes) {
        return Err(format!(
            "{}: {max_bytes} must be between 1024 and {MAX_QUERY_BYTES}",
            key("max_bytes")
        ));
    }
    Ok(PrometheusGrant {
        timeout,
        max_series,
        max_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PrometheusGrant, String> {
        let raw: RawPrometheus = toml::from_str(text).map_err(|e| e.to_string())?;
        grant(&raw, Duration::from_secs(30))
    }

    #[test]
    fn defaults_and_caps() {
        assert_eq!(parse("").unwrap(), PrometheusGrant::default());
        let set = parse("timeout = \"2s\"\nmax_series = 7\nmax_bytes = 4096").unwrap();
        assert_eq!(
            set,
            PrometheusGrant {
                timeout: Duration::from_secs(2),
                max_series: 7,
                max_bytes: 4096
            }
        );
        for (bad, named) in [
            ("timeout = \"0s\"", "timeout"),
            ("timeout = \"31s\"", "timeout"),
            ("timeout = \"soon\"", "timeout"),
            ("max_series = 0", "max_series"),
            ("max_series = 10001", "max_series"),
            ("max_bytes = 10", "max_bytes"),
            ("max_bytes = 99999999", "max_bytes"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(named), "{bad}: {err}");
        }
        assert!(parse("max_rows = 1").unwrap_err().contains("max_rows"));
    }

    #[test]
    fn default_timeout_fits_a_short_plugin() {
        let raw = RawPrometheus::default();
        assert_eq!(
            grant(&raw, Duration::from_secs(2)).unwrap().timeout,
            Duration::from_secs(2)
        );
    }
}
