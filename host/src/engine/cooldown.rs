//! Cooldowns: after an action is dispatched, the same plugin does not act on
//! the same alert again until the cooldown has passed. They are kept in
//! memory and rebuilt from the audit trail's `action_started` events at start,
//! so restarting the host does not reset them.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;

use autoheal_core::audit::{line_has_kind, line_ts, scan_backwards};
use autoheal_core::event::{Event, EventBody};

/// Entries beyond this trigger a sweep of expired ones.
const SWEEP_ABOVE: usize = 1024;

/// The cooldowns running, by cooldown key; rebuilt from the audit trail at start.
#[derive(Debug, Default)]
pub struct Cooldowns {
    /// Cooldown key → when it ends.
    until: HashMap<String, Running>,
}

/// One running cooldown.
#[derive(Debug, Clone)]
struct Running {
    /// Unix time it ends.
    until: f64,
    /// The alert it belongs to (metrics are per alertname).
    alertname: String,
}

/// A cooldown still running, for status pages and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveCooldown {
    /// The cooldown key (alertname, plugin and any `cooldown_labels`).
    pub key: String,
    /// The alert it belongs to.
    pub alertname: String,
    /// Seconds left.
    pub remaining_sec: f64,
}

impl Cooldowns {
    /// Seconds left for `key`, if it is cooling down.
    pub fn remaining(&self, key: &str, now: f64) -> Option<f64> {
        self.until
            .get(key)
            .map(|running| running.until - now)
            .filter(|left| *left > 0.0)
    }

    /// Takes back the cooldown `key` (its action was never recorded).
    pub fn forget(&mut self, key: &str) {
        self.until.remove(key);
    }

    /// Starts (or extends) the cooldown `key` until the unix time `until`.
    pub fn start(&mut self, key: String, alertname: &str, until: f64, now: f64) {
        if self.until.len() > SWEEP_ABOVE {
            self.until.retain(|_, running| running.until > now);
        }
        let alertname = alertname.to_owned();
        self.until.insert(key, Running { until, alertname });
    }

    /// The cooldowns still running at `now`.
    pub fn active(&self, now: f64) -> impl Iterator<Item = ActiveCooldown> + '_ {
        self.until
            .iter()
            .filter(move |(_, running)| running.until > now)
            .map(move |(key, running)| ActiveCooldown {
                key: key.clone(),
                alertname: running.alertname.clone(),
                remaining_sec: running.until - now,
            })
    }

    /// Restores the cooldowns still running at `now` from the trail, reading
    /// back no further than `horizon_sec` (the longest cooldown configured).
    pub fn rebuild(audit_path: &Path, now: f64, horizon_sec: f64) -> std::io::Result<Self> {
        let mut cooldowns = Self::default();
        scan_backwards(audit_path, |line| {
            if line_ts(line).is_some_and(|ts| ts < now - horizon_sec) {
                return ControlFlow::Break(());
            }
            // Only action_started is parsed: a long trail costs a scan, not a parse.
            if !line_has_kind(line, &["action_started"]) {
                return ControlFlow::Continue(());
            }
            let Ok(event) = serde_json::from_slice::<Event>(line) else {
                return ControlFlow::Continue(());
            };
            if let EventBody::ActionStarted(started) = event.body {
                let until = started.cooldown_until;
                // Newest first: an older record of the same key is stale.
                if until > now && !cooldowns.until.contains_key(&started.cooldown_key) {
                    let alertname = started.alertname;
                    cooldowns
                        .until
                        .insert(started.cooldown_key, Running { until, alertname });
                }
            }
            ControlFlow::Continue(())
        })?;
        Ok(cooldowns)
    }
}
