//! Maintenance windows (`[[maintenance]]` in the config): recurring times
//! during which the actions they cover are skipped as `paused`.
//!
//! A window opens at each occurrence of its schedule ([`schedule`]) and
//! stays open for its duration; [`scope`] says which actions it covers.
//! Everything here is a pure function of the windows and the time, asked
//! when a decision is made ([`covering`]), by `GET /` and at each scrape of
//! `/metrics`; [`announce`] records `window_opened` and `window_closed`.
//! Windows are config: replicas that share a config share their windows.

pub mod announce;
pub mod schedule;
pub mod scope;

use std::collections::BTreeMap;
use std::time::Duration;

pub use schedule::{Schedule, ScheduleError};
pub use scope::{Scope, ScopeError};

/// The prefix of a window's `pause_id` in a `paused` skip: `window:NAME`.
pub const PAUSE_ID_PREFIX: &str = "window:";

/// One `[[maintenance]]` window, checked.
#[derive(Debug, Clone)]
pub struct Window {
    /// Its unique name.
    pub name: String,
    /// When its occurrences begin.
    pub schedule: Schedule,
    /// How long each stays open (elapsed time).
    pub duration: Duration,
    /// What it covers.
    pub scope: Scope,
    /// Why it pauses: as configured, or a default naming the window.
    pub reason: String,
}

/// Whether a window is open at some time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Open since the latest occurrence began, until it ends.
    Open {
        /// When the occurrence began (unix seconds).
        since: f64,
        /// When it ends (unix seconds).
        until: f64,
    },
    /// Closed.
    Closed,
}

/// An open window that covers an action.
#[derive(Debug, Clone, PartialEq)]
pub struct Cover {
    /// `window:NAME`.
    pub pause_id: String,
    /// The window's reason.
    pub reason: String,
    /// When it ends (unix seconds).
    pub until: f64,
}

impl Window {
    /// Open or closed at `now`: open while the latest occurrence that began
    /// at or before `now` has not lasted its duration. (Of occurrences that
    /// overlap, the latest ends last.)
    pub fn phase_at(&self, now: f64) -> Phase {
        match self.schedule.latest_start_at_or_before(now) {
            Some(since) if since + self.duration.as_secs_f64() > now => Phase::Open {
                since,
                until: since + self.duration.as_secs_f64(),
            },
            _ => Phase::Closed,
        }
    }

    /// When the next occurrence after `now` begins.
    pub fn next_start_after(&self, now: f64) -> Option<f64> {
        self.schedule.next_start_after(now)
    }

    /// `window:NAME`.
    pub fn pause_id(&self) -> String {
        format!("{PAUSE_ID_PREFIX}{}", self.name)
    }
}

/// The default reason of a window configured without one.
pub fn default_reason(name: &str) -> String {
    format!("maintenance window {name:?}")
}

/// The open window that covers `plugin` acting on an alert with `labels`
/// at `now`, if one does; of several, the one that stays open longest.
pub fn covering(
    windows: &[Window],
    plugin: &str,
    labels: &BTreeMap<String, String>,
    now: f64,
) -> Option<Cover> {
    windows
        .iter()
        .filter(|w| w.scope.covers(plugin, labels))
        .filter_map(|w| match w.phase_at(now) {
            Phase::Open { until, .. } => Some((w, until)),
            Phase::Closed => None,
        })
        .max_by(|(_, a), (_, b)| a.total_cmp(b))
        .map(|(window, until)| Cover {
            pause_id: window.pause_id(),
            reason: window.reason.clone(),
            until,
        })
}

/// Logs a warning for each plugin a window names that is not loaded.
pub fn warn_of_unknown_plugins(windows: &[Window], plugins: &autoheal_sandbox::registry::PluginSet) {
    let loaded: Vec<&str> = plugins.iter().map(|p| p.manifest.name.as_str()).collect();
    for (window, plugin) in unknown_plugins(windows, &loaded) {
        tracing::warn!(
            window,
            plugin,
            "a maintenance window names a plugin that is not loaded"
        );
    }
}

/// The plugins windows name that are not loaded (plugins reload, so this
/// is a warning, not an error): (window, plugin).
pub fn unknown_plugins<'a>(windows: &'a [Window], loaded: &[&str]) -> Vec<(&'a str, &'a str)> {
    windows
        .iter()
        .flat_map(|w| w.scope.plugins.iter().map(move |p| (w.name.as_str(), p.as_str())))
        .filter(|(_, plugin)| !loaded.contains(plugin))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Unix seconds of an RFC 3339 time.
    pub(crate) fn at(text: &str) -> f64 {
        chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp() as f64
    }

    pub(crate) fn window(
        name: &str,
        cron: &str,
        zone: &str,
        hours: u64,
        plugins: &[&str],
        matchers: &str,
    ) -> Window {
        Window {
            name: name.into(),
            schedule: Schedule::parse(cron, zone, at("2026-01-01T00:00:00Z")).unwrap(),
            duration: Duration::from_secs(hours * 3600),
            scope: Scope::parse(plugins.iter().map(|p| (*p).to_owned()).collect(), matchers).unwrap(),
            reason: default_reason(name),
        }
    }

    /// "Sundays 02:00–04:00 Europe/Paris": the window lasts two hours of
    /// elapsed time. Around the spring change it opens at 03:00 CEST (02:00
    /// does not exist) and closes at 05:00 CEST; around the autumn change it
    /// opens at the first 02:00 (CEST) and closes two hours later, at 03:00
    /// CET.
    #[test]
    fn sundays_two_to_four_in_paris_across_both_changes() {
        let w = window("weekly-db", "0 2 * * SUN", "Europe/Paris", 2, &[], "");
        let table = [
            // An ordinary winter Sunday: 02:00–04:00 CET = 01:00–03:00 UTC.
            ("2026-03-22T00:59:59Z", None),
            ("2026-03-22T01:00:00Z", Some("2026-03-22T03:00:00Z")),
            ("2026-03-22T02:59:59Z", Some("2026-03-22T03:00:00Z")),
            ("2026-03-22T03:00:00Z", None),
            // Spring change (29 March): opens at 03:00 CEST = 01:00 UTC.
            ("2026-03-29T00:30:00Z", None),
            ("2026-03-29T01:00:00Z", Some("2026-03-29T03:00:00Z")),
            ("2026-03-29T02:59:00Z", Some("2026-03-29T03:00:00Z")),
            ("2026-03-29T03:00:00Z", None),
            // Summer: 02:00–04:00 CEST = 00:00–02:00 UTC.
            ("2026-04-05T00:00:00Z", Some("2026-04-05T02:00:00Z")),
            ("2026-04-05T02:00:00Z", None),
            // Autumn change (25 October): opens at the first 02:00 (CEST,
            // 00:00 UTC), not again at the second (CET, 01:00 UTC).
            ("2026-10-24T23:59:59Z", None),
            ("2026-10-25T00:00:00Z", Some("2026-10-25T02:00:00Z")),
            ("2026-10-25T01:30:00Z", Some("2026-10-25T02:00:00Z")),
            ("2026-10-25T02:00:00Z", None),
            ("2026-10-25T02:30:00Z", None),
            // Winter again: 01:00–03:00 UTC.
            ("2026-11-01T01:00:00Z", Some("2026-11-01T03:00:00Z")),
        ];
        for (now, until) in table {
            let expected = match until {
                Some(until) => Phase::Open {
                    since: at(until) - 7200.0,
                    until: at(until),
                },
                None => Phase::Closed,
            };
            assert_eq!(w.phase_at(at(now)), expected, "at {now}");
        }
        assert_eq!(
            w.next_start_after(at("2026-03-28T00:00:00Z")),
            Some(at("2026-03-29T01:00:00Z"))
        );
    }

    #[test]
    fn the_covering_window_is_the_open_one_in_scope_that_lasts_longest() {
        let crm = [("service".to_owned(), "crm".to_owned())].into_iter().collect();
        let db = [("service".to_owned(), "db".to_owned())].into_iter().collect();
        let windows = [
            window("always-short", "* * * * *", "UTC", 1, &["restart-crm-api"], ""),
            window("always-long", "* * * * *", "UTC", 3, &[], r#"service="crm""#),
            window("never-now", "0 2 1 1 *", "UTC", 1, &[], ""),
        ];
        let now = at("2026-06-10T12:00:30Z");
        let cover = covering(&windows, "restart-crm-api", &crm, now).unwrap();
        assert_eq!(cover.pause_id, "window:always-long");
        assert_eq!(cover.until, at("2026-06-10T15:00:00Z"));
        assert_eq!(cover.reason, "maintenance window \"always-long\"");
        let cover = covering(&windows, "restart-crm-api", &db, now).unwrap();
        assert_eq!(cover.pause_id, "window:always-short");
        assert_eq!(covering(&windows, "restart-db", &db, now), None);
        assert_eq!(
            unknown_plugins(&windows, &["restart-db"]),
            [("always-short", "restart-crm-api")]
        );
    }
}
