//! The `min_uptime_sec` guard: do not restart a container that has only just
//! started.
//!
//! A container that started a few seconds ago is probably still coming up,
//! maybe from the previous restart; restarting it again would only restart it
//! in a loop. A plugin reads the threshold with [`min_uptime_sec`] and, just
//! before it restarts a container, asks [`check`]:
//!
//! ```no_run
//! use autoheal_sdk::prelude::*;
//! use autoheal_sdk::uptime;
//!
//! fn handle(alert: Alert, config: Config) -> Result<Outcome, String> {
//!     let name = config.require("container")?;
//!     let min_uptime_sec = uptime::min_uptime_sec(&config)?;
//!     if let Some(reason) = uptime::check(name, min_uptime_sec)? {
//!         log::info(&reason);
//!         return Ok(Outcome::skipped(reason));
//!     }
//!     containers::restart(name).map_err(|e| format!("restart of {name} failed: {e}"))?;
//!     Ok(Outcome::acted(format!("restarted {name}")))
//! }
//! # fn main() {}
//! ```
//!
//! A plugin that inspects the container itself, because it needs more than
//! the uptime, can use [`too_young`] on what it got.

use crate::Config;
use crate::containers::{self, ContainerError, ContainerInfo};
use crate::log;

/// Default for the `min_uptime_sec` config key.
pub const DEFAULT_MIN_UPTIME_SEC: u64 = 60;

/// The `min_uptime_sec` config key as a number of seconds, or
/// [`DEFAULT_MIN_UPTIME_SEC`] if it is not set.
///
/// A value that is not a whole number of seconds (`"1m"`, `"-5"`) is an error
/// naming the key and the value.
pub fn min_uptime_sec(config: &Config) -> Result<u64, String> {
    config.parse_or("min_uptime_sec", DEFAULT_MIN_UPTIME_SEC)
}

/// `Some(reason)` if the container started too recently to be restarted: up
/// `uptime_seconds`, less than `min_uptime_sec`: the reason of a skip.
///
/// The reason reads `crm-api started 12s ago (min_uptime_sec = 60)`.
/// An unknown uptime (`None`) does not block the restart.
pub fn too_young(name: &str, uptime_seconds: Option<u64>, min_uptime_sec: u64) -> Option<String> {
    match uptime_seconds {
        Some(uptime) if uptime < min_uptime_sec => Some(format!(
            "{name} started {uptime}s ago (min_uptime_sec = {min_uptime_sec})"
        )),
        _ => None,
    }
}

/// Inspect container `name` before restarting it.
///
/// - `Ok(Some(reason))`: it started less than `min_uptime_sec` ago; skip the
///   restart, with this reason (see [`too_young`]).
/// - `Ok(None)`: go ahead and restart it. If its uptime is unknown (the engine
///   gave no parsable start time, or could not be asked), a warning saying so
///   has been logged: an unknown uptime does not block the restart.
/// - `Err`: the container does not exist (`container crm-api not found`) or
///   the host denied the call (`denied: ...`); do not restart it.
pub fn check(name: &str, min_uptime_sec: u64) -> Result<Option<String>, String> {
    match judge(name, containers::inspect(name), min_uptime_sec)? {
        Verdict::Restart => Ok(None),
        Verdict::RestartWarning(warning) => {
            log::warn(&warning);
            Ok(None)
        }
        Verdict::Skip(summary) => Ok(Some(summary)),
    }
}

/// What [`check`] makes of an inspect result.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Up long enough.
    Restart,
    /// Uptime unknown: restart, and log this warning.
    RestartWarning(String),
    /// Too young; the summary says so.
    Skip(String),
}

/// The decision behind [`check`], without the host calls.
fn judge(
    name: &str,
    inspected: Result<ContainerInfo, ContainerError>,
    min_uptime_sec: u64,
) -> Result<Verdict, String> {
    match inspected {
        Ok(info) => {
            if let Some(summary) = too_young(name, info.uptime_seconds, min_uptime_sec) {
                return Ok(Verdict::Skip(summary));
            }
            if info.uptime_seconds.is_none() {
                return Ok(Verdict::RestartWarning(format!(
                    "uptime of {name} is unknown (started_at = {:?}); restarting anyway",
                    info.started_at
                )));
            }
            Ok(Verdict::Restart)
        }
        Err(ContainerError::NotFound(_)) => Err(format!("container {name} not found")),
        Err(denied @ ContainerError::Denied(_)) => Err(denied.to_string()),
        Err(ContainerError::Runtime(e)) => Ok(Verdict::RestartWarning(format!(
            "could not check uptime of {name} ({e}); restarting anyway"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::config;

    /// A running `crm-api` that has been up this long.
    fn info(uptime_seconds: Option<u64>) -> ContainerInfo {
        ContainerInfo {
            name: "crm-api".to_string(),
            state: "running".to_string(),
            started_at: "2024-05-01T09:00:00Z".to_string(),
            uptime_seconds,
            restart_count: 0,
            health: None,
            labels: Default::default(),
        }
    }

    #[test]
    fn min_uptime_from_config() {
        assert_eq!(min_uptime_sec(&config(&[("container", "crm-api")])), Ok(60));
        assert_eq!(min_uptime_sec(&config(&[("min_uptime_sec", "300")])), Ok(300));
        assert_eq!(min_uptime_sec(&config(&[("min_uptime_sec", "0")])), Ok(0));
    }

    #[test]
    fn bad_min_uptime() {
        let err = min_uptime_sec(&config(&[("container", "a"), ("min_uptime_sec", "1m")])).unwrap_err();
        assert!(err.contains("min_uptime_sec") && err.contains("1m"), "{err}");
        let err = min_uptime_sec(&config(&[("min_uptime_sec", "-5")])).unwrap_err();
        assert!(err.contains("min_uptime_sec") && err.contains("-5"), "{err}");
    }

    #[test]
    fn uptime_check() {
        assert_eq!(
            too_young("crm-api", Some(12), 60),
            Some("crm-api started 12s ago (min_uptime_sec = 60)".into())
        );
        assert_eq!(too_young("crm-api", Some(60), 60), None);
        assert_eq!(too_young("crm-api", Some(3600), 60), None);
        assert_eq!(too_young("crm-api", None, 60), None);
        assert_eq!(too_young("crm-api", Some(0), 0), None);
    }

    #[test]
    fn check_skips_a_young_container() {
        assert_eq!(
            judge("crm-api", Ok(info(Some(5))), 60),
            Ok(Verdict::Skip(
                "crm-api started 5s ago (min_uptime_sec = 60)".into()
            ))
        );
        assert_eq!(judge("crm-api", Ok(info(Some(60))), 60), Ok(Verdict::Restart));
        assert_eq!(judge("crm-api", Ok(info(Some(0))), 0), Ok(Verdict::Restart));
    }

    #[test]
    fn check_restarts_with_a_warning_when_uptime_is_unknown() {
        assert_eq!(
            judge("crm-api", Ok(info(None)), 60),
            Ok(Verdict::RestartWarning(
                "uptime of crm-api is unknown (started_at = \"2024-05-01T09:00:00Z\"); restarting anyway"
                    .into()
            ))
        );
        assert_eq!(
            judge(
                "crm-api",
                Err(ContainerError::Runtime("socket closed".into())),
                60
            ),
            Ok(Verdict::RestartWarning(
                "could not check uptime of crm-api (socket closed); restarting anyway".into()
            ))
        );
    }

    #[test]
    fn check_fails_for_a_missing_or_denied_container() {
        assert_eq!(
            judge(
                "crm-api",
                Err(ContainerError::NotFound("no such container".into())),
                60
            ),
            Err("container crm-api not found".into())
        );
        assert_eq!(
            judge(
                "crm-api",
                Err(ContainerError::Denied("not in manifest".into())),
                60
            ),
            Err("denied: not in manifest".into())
        );
    }
}
