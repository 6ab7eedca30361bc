//! The ending that container-restarting plugins share: a skip for a
//! resolved alert, the uptime guard (a skip too), then the restart and its
//! log line.
//!
//! ```no_run
//! use autoheal_sdk::prelude::*;
//! use autoheal_sdk::{remedy, uptime};
//!
//! fn handle(alert: Alert, config: Config) -> Result<Outcome, String> {
//!     if let Some(answer) = remedy::skip_resolved(&alert) {
//!         return Ok(answer);
//!     }
//!     let min_uptime_sec = uptime::min_uptime_sec(&config)?;
//!     let name = config.require("container")?;
//!     remedy::restart_unless_too_young(name, min_uptime_sec)
//! }
//! # fn main() {}
//! ```

use crate::{Alert, Outcome, containers, log, uptime};

/// Why a plugin skips a resolved alert.
pub const RESOLVED: &str = "nothing to do: alert is resolved";

/// `Some(skip)` when the alert is resolved: restarting plugins act only on
/// firing alerts. Makes no host call.
pub fn skip_resolved(alert: &Alert) -> Option<Outcome> {
    (!alert.is_firing()).then(|| Outcome::skipped(RESOLVED))
}

/// Logs `reason` and answers it as a skip.
pub fn skip(reason: String) -> Outcome {
    log::info(&format!("skipped: {reason}"));
    Outcome::Skipped(reason)
}

/// Restarts `name`; on success logs `summary` and answers with it (acted).
pub fn restart(name: &str, summary: String) -> Result<Outcome, String> {
    match containers::restart(name) {
        Ok(()) => {
            log::info(&summary);
            Ok(Outcome::Acted(summary))
        }
        Err(e) => Err(format!("restart of {name} failed: {e}")),
    }
}

/// The usual ending: [`uptime::check`] (not found or denied: fail; started
/// less than `min_uptime_sec` ago: a skip, logged; uptime unknown: a
/// warning, and restart anyway), then [`restart`] answering `restarted NAME`.
pub fn restart_unless_too_young(name: &str, min_uptime_sec: u64) -> Result<Outcome, String> {
    if let Some(reason) = uptime::check(name, min_uptime_sec)? {
        return Ok(skip(reason));
    }
    restart(name, format!("restarted {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;
    use crate::testing::firing;

    #[test]
    fn only_a_resolved_alert_is_skipped() {
        assert_eq!(skip_resolved(&firing(&[])), None);
        let mut alert = firing(&[]);
        alert.status = Status::Resolved;
        assert_eq!(skip_resolved(&alert), Some(Outcome::Skipped(RESOLVED.into())));
    }
}
