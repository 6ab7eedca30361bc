//! The `state` capability's part of a manifest: a small key-value store of
//! the plugin's own, bounded in keys, value size and lifetime. Unset keys
//! take defaults; every key has a cap, so that no plugin can make the host
//! keep much for it, or keep it forever.
//!
//! ```toml
//! [capabilities.state]
//! max_keys = 64
//! max_value_bytes = 4096
//! max_ttl = "7d"
//! ```

use std::time::Duration;

use autoheal_core::util::parse_duration;
use serde::Deserialize;

/// Keys a plugin may hold when the manifest does not say.
pub const DEFAULT_STATE_KEYS: usize = 64;
/// The most `max_keys` may be.
pub const MAX_STATE_KEYS: usize = 1024;
/// Longest value when the manifest does not say.
pub const DEFAULT_STATE_VALUE_BYTES: usize = 4096;
/// The most `max_value_bytes` may be.
pub const MAX_STATE_VALUE_BYTES: usize = 64 * 1024;
/// Longest a key lives when the manifest does not say (and a `set` without
/// a TTL).
pub const DEFAULT_STATE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The most `max_ttl` may be.
pub const MAX_STATE_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// Longest key, in bytes.
pub const MAX_STATE_KEY: usize = 128;

/// `[capabilities.state]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawState {
    max_keys: Option<usize>,
    max_value_bytes: Option<usize>,
    max_ttl: Option<String>,
}

/// What the `state` capability allows a plugin, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateGrant {
    /// Keys held at once; a `set` of a new key past it is refused.
    pub max_keys: usize,
    /// Longest value, in bytes.
    pub max_value_bytes: usize,
    /// Longest a key lives (a `set` without a TTL gets this one).
    pub max_ttl: Duration,
}

impl Default for StateGrant {
    fn default() -> Self {
        Self {
            max_keys: DEFAULT_STATE_KEYS,
            max_value_bytes: DEFAULT_STATE_VALUE_BYTES,
            max_ttl: DEFAULT_STATE_TTL,
        }
    }
}

/// Whether `key` may name a state key: 1 to 128 characters of
/// `[A-Za-z0-9_.:-]` (safe in a file, a JSON document and an etcd key).
pub fn is_state_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_STATE_KEY
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Validates `[capabilities.state]`.
pub(crate) fn grant(raw: &RawState) -> Result<StateGrant, String> {
    let key = |k: &str| format!("key `capabilities.state.{k}`");
    let max_keys = raw.max_keys.unwrap_or(DEFAULT_STATE_KEYS);
    if max_keys == 0 || max_keys > MAX_STATE_KEYS {
        return Err(format!(
            "{}: {max_keys} must be between 1 and {MAX_STATE_KEYS}",
            key("max_keys")
        ));
    }
    let max_value_bytes = raw.max_value_bytes.unwrap_or(DEFAULT_STATE_VALUE_BYTES);
    if max_value_bytes == 0 || max_value_bytes > MAX_STATE_VALUE_BYTES {
        return Err(format!(
            "{}: {max_value_bytes} must be between 1 and {MAX_STATE_VALUE_BYTES}",
            key("max_value_bytes")
        ));
    }
    let max_ttl = match &raw.max_ttl {
        None => DEFAULT_STATE_TTL,
        Some(text) => parse_duration(text).map_err(|e| format!("{}: {e}", key("max_ttl")))?,
    };
    if max_ttl < Duration::from_secs(1) || max_ttl > MAX_STATE_TTL {
        return Err(format!(
            "{}: {} must be between 1s and {}",
            key("max_ttl"),
            humantime::format_duration(max_ttl),
            humantime::format_duration(MAX_STATE_TTL)
        ));
    }
    Ok(StateGrant {
        max_keys,
        max_value_bytes,
        max_ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<StateGrant, String> {
        let raw: RawState = toml::from_str(text).map_err(|e| e.to_string())?;
        grant(&raw)
    }

    #[test]
    fn state_defaults_and_caps() {
        assert_eq!(parse("").unwrap(), StateGrant::default());
        assert_eq!(
            parse("max_keys = 2\nmax_value_bytes = 10\nmax_ttl = \"1m\"").unwrap(),
            StateGrant {
                max_keys: 2,
                max_value_bytes: 10,
                max_ttl: Duration::from_secs(60)
            }
        );
        for (bad, named) in [
            ("max_keys = 0", "max_keys"),
            ("max_keys = 1025", "max_keys"),
            ("max_value_bytes = 0", "max_value_bytes"),
            ("max_value_bytes = 65537", "max_value_bytes"),
            ("max_ttl = \"91d\"", "max_ttl"),
            ("max_ttl = \"0s\"", "max_ttl"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(named), "{bad}: {err}");
        }
        assert!(parse("keys = 1").unwrap_err().contains("keys"));
    }

    #[test]
    fn state_keys_are_a_safe_set() {
        for good in ["a", "last-restart", "crm.api:count_1", &"k".repeat(128)] {
            assert!(is_state_key(good), "{good}");
        }
        for bad in ["", "a b", "../x", "a/b", "é", "a\0", &"k".repeat(129)] {
            assert!(!is_state_key(bad), "{bad:?}");
        }
    }
}
