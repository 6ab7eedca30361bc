//! Cooldowns: after an action is dispatched, the same plugin does not act on
//! the same alert again until the cooldown has passed. They are kept in
//! memory and rebuilt from the audit trail's `action_started` events at start,
//! so restarting the host does not reset them.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;

use crate::event::{Event, EventKind};

/// Entries beyond this trigger a sweep of expired ones.
const SWEEP_ABOVE: usize = 1024;

#[derive(Debug, Default)]
pub struct Cooldowns {
    /// Cooldown key → unix time it ends.
    until: HashMap<String, f64>,
}

impl Cooldowns {
    /// Seconds left for `key`, if it is cooling down.
    pub fn remaining(&self, key: &str, now: f64) -> Option<f64> {
        self.until
            .get(key)
            .map(|until| until - now)
            .filter(|left| *left > 0.0)
    }

    pub fn start(&mut self, key: String, until: f64, now: f64) {
        if self.until.len() > SWEEP_ABOVE {
            self.until.retain(|_, end| *end > now);
        }
        self.until.insert(key, until);
    }

    /// Active cooldowns and when they end, for status pages.
    pub fn active(&self, now: f64) -> impl Iterator<Item = (&str, f64)> {
        self.until
            .iter()
            .filter(move |(_, until)| **until > now)
            .map(|(key, until)| (key.as_str(), *until))
    }

    /// Restores the cooldowns still running at `now` from the trail, reading
    /// back no further than `horizon_sec` (the longest cooldown configured).
    pub fn rebuild(audit_path: &Path, now: f64, horizon_sec: f64) -> std::io::Result<Self> {
        let mut cooldowns = Self::default();
        crate::audit::scan_backwards(audit_path, |line| {
            let Ok(event) = serde_json::from_slice::<Event>(line) else {
                return ControlFlow::Continue(());
            };
            if event.ts < now - horizon_sec {
                return ControlFlow::Break(());
            }
            if event.kind == EventKind::ActionStarted {
                let until = event.fields.get("cooldown_until").and_then(|v| v.as_f64());
                if let (Some(key), Some(until)) = (event.str_field("cooldown_key"), until) {
                    // Newest first: an older record of the same key is stale.
                    if until > now && !cooldowns.until.contains_key(key) {
                        cooldowns.until.insert(key.to_owned(), until);
                    }
                }
            }
            ControlFlow::Continue(())
        })?;
        Ok(cooldowns)
    }
}
