//! Cooldowns: after an action is dispatched, the same plugin does not act on
//! the same alert again until the cooldown has passed. They are kept in
//! memory and rebuilt from the audit trail's `action_started` events at start,
//! so restarting the host does not reset them.

use std::collections::HashMap;

use autoheal_core::event::ActionStarted;

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

    /// Restores the cooldown an `action_started` read back from the trail
    /// began, if it still runs at `now`. The trail is read newest first:
    /// an older record of a key already restored is stale.
    pub fn restore(&mut self, started: ActionStarted, now: f64) {
        let until = started.cooldown_until;
        if until > now && !self.until.contains_key(&started.cooldown_key) {
            let alertname = started.alertname;
            self.until
                .insert(started.cooldown_key, Running { until, alertname });
        }
    }
}
