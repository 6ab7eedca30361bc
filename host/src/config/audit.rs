//! `[audit]`: when the trail rolls into segments and which are kept, as
//! written (sizes and durations as text) and as checked ([`Rotation`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use autoheal_core::audit::Rotation;
use autoheal_core::util::parse_duration;

/// `[audit]` as written. (`audit_path` and `audit_fsync` stay top-level
/// keys, as they always were.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAudit {
    /// Roll the live file once it passes this size (`256MiB`, `1GB`, or
    /// `off`).
    pub max_bytes: String,
    /// Roll the live file once its first event is older than this (`1d`,
    /// or `off`).
    pub max_age: String,
    /// Rolled segments kept; older ones are removed.
    pub keep_segments: u32,
    /// Bytes of rolled segments kept in all (`off`: no bound).
    pub keep_bytes: String,
    /// Rolled segments kept while younger than this (`off`: no bound).
    pub keep_age: String,
    /// zstd-compress rolled segments.
    pub compress: bool,
}

impl Default for RawAudit {
    fn default() -> Self {
        Self {
            max_bytes: "256MiB".into(),
            max_age: "off".into(),
            keep_segments: 10,
            keep_bytes: "off".into(),
            keep_age: "off".into(),
            compress: true,
        }
    }
}

/// A bad `[audit]` value; the key it names is `audit.<field>`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AuditConfigError {
    /// The key, as `audit.max_bytes`.
    pub key: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// Smallest `max_bytes`: below it a host would roll at nearly every write.
const MIN_MAX_BYTES: u64 = 64 * 1024;

impl RawAudit {
    /// The checked rotation policy.
    pub fn validate(&self) -> Result<Rotation, AuditConfigError> {
        let max_bytes = optional(&self.max_bytes, "audit.max_bytes", parse_bytes)?;
        if let Some(max) = max_bytes
            && max < MIN_MAX_BYTES
        {
            return Err(AuditConfigError {
                key: "audit.max_bytes",
                message: format!("{max} bytes is too small to roll at: at least 64KiB (or off)"),
            });
        }
        let max_age = optional(&self.max_age, "audit.max_age", duration)?;
        if self.keep_segments == 0 {
            return Err(AuditConfigError {
                key: "audit.keep_segments",
                message: "must be at least 1 (a rolled segment is kept until the next rotation)".into(),
            });
        }
        Ok(Rotation {
            max_bytes,
            max_age,
            keep_segments: self.keep_segments,
            keep_bytes: optional(&self.keep_bytes, "audit.keep_bytes", parse_bytes)?,
            keep_age: optional(&self.keep_age, "audit.keep_age", duration)?,
            compress: self.compress,
        })
    }
}

/// `off` (or empty) is `None`; anything else must parse, and not be zero.
fn optional<T: PartialEq + Default>(
    text: &str,
    key: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, AuditConfigError> {
    let text = text.trim();
    if text.is_empty() || text == "off" {
        return Ok(None);
    }
    let value = parse(text).map_err(|message| AuditConfigError { key, message })?;
    if value == T::default() {
        return Err(AuditConfigError {
            key,
            message: format!("{text:?} is zero: write off for no bound"),
        });
    }
    Ok(Some(value))
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

/// `256MiB`, `1GB`, `512KiB`, `100000` (bytes): binary units are powers of
/// 1024, decimal of 1000.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || format!("{text:?} is not a size like 256MiB, 1GB or 100000 (bytes)");
    let number: u64 = number.parse().map_err(|_| bad())?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1 << 10,
        "MB" => 1000 * 1000,
        "MiB" => 1 << 20,
        "GB" => 1000 * 1000 * 1000,
        "GiB" => 1 << 30,
        "TB" => 1000 * 1000 * 1000 * 1000,
        "TiB" => 1 << 40,
        _ => return Err(bad()),
    };
    number.checked_mul(scale).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_and_decimal_units_and_bad_ones_say_so() {
        assert_eq!(parse_bytes("256MiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_bytes(" 100000 "), Ok(100_000));
        assert_eq!(parse_bytes("2 KiB"), Ok(2048));
        for bad in ["", "MiB", "1.5GB", "12XB", "-1", "99999999999TiB"] {
            let err = parse_bytes(bad).unwrap_err();
            assert!(err.contains("is not a size like 256MiB"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_defaults_roll_at_256_mib_and_keep_ten_compressed_segments() {
        let rotation = RawAudit::default().validate().unwrap();
        assert_eq!(rotation, Rotation::default());
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (
                RawAudit {
                    max_bytes: "lots".into(),
                    ..RawAudit::default()
                },
                "audit.max_bytes",
            ),
            (
                RawAudit {
                    max_bytes: "1KiB".into(),
                    ..RawAudit::default()
                },
                "audit.max_bytes",
            ),
            (
                RawAudit {
                    max_age: "soon".into(),
                    ..RawAudit::default()
                },
                "audit.max_age",
            ),
            (
                RawAudit {
                    keep_segments: 0,
                    ..RawAudit::default()
                },
                "audit.keep_segments",
            ),
            (
                RawAudit {
                    keep_bytes: "0".into(),
                    ..RawAudit::default()
                },
                "audit.keep_bytes",
            ),
            (
                RawAudit {
                    keep_age: "0s".into(),
                    ..RawAudit::default()
                },
                "audit.keep_age",
            ),
        ];
        for (raw, key) in cases {
            assert_eq!(raw.validate().unwrap_err().key, key, "{raw:?}");
        }
        let off = RawAudit {
            max_bytes: "off".into(),
            max_age: "1d".into(),
            keep_bytes: "10GiB".into(),
            ..RawAudit::default()
        };
        let rotation = off.validate().unwrap();
        assert_eq!(rotation.max_bytes, None);
        assert_eq!(rotation.max_age, Some(Duration::from_secs(86_400)));
        assert_eq!(rotation.keep_bytes, Some(10 << 30));
    }
}
