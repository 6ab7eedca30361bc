//! `[[maintenance]]`: maintenance windows as written, and as checked. The
//! schedule logic lives in `crate::maintenance`; this file only reads and
//! checks what a person wrote, naming the window and the key in each error.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use autoheal_core::util::parse_duration;

use crate::maintenance::{Schedule, Scope, Window, default_reason};

/// The longest window: a pause longer than a week is a change of the
/// configuration (or of a plugin), not maintenance.
pub const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// One `[[maintenance]]` table as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    /// Unique among the windows; `window:NAME` is its `pause_id`.
    pub name: String,
    /// Cron, 5 fields: minute hour day month weekday.
    pub schedule: String,
    /// How long each occurrence stays open, e.g. `2h`.
    pub duration: String,
    /// IANA time zone the schedule is read in.
    #[serde(default = "utc")]
    pub timezone: String,
    /// The plugins it covers; empty: every plugin.
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Label matchers, e.g. `service="crm"`; empty: every alert.
    #[serde(default, rename = "match")]
    pub matchers: String,
    /// Why, for people; empty: a default naming the window.
    #[serde(default)]
    pub reason: String,
}

fn utc() -> String {
    "UTC".into()
}

impl Default for RawWindow {
    /// The defaults of the optional keys (the table of the docs shows them).
    fn default() -> Self {
        Self {
            name: String::new(),
            schedule: String::new(),
            duration: String::new(),
            timezone: utc(),
            plugins: Vec::new(),
            matchers: String::new(),
            reason: String::new(),
        }
    }
}

/// A `[[maintenance]]` window that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("[[maintenance]] {window}: `{key}`: {message}")]
pub struct MaintenanceConfigError {
    /// The window, by name (or by position when it has none).
    pub window: String,
    /// The key.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Checks every window at `now` (a schedule must still occur).
pub fn validate(raw: &[RawWindow], now: f64) -> Result<Vec<Window>, MaintenanceConfigError> {
    let mut names = BTreeSet::new();
    let mut windows = Vec::with_capacity(raw.len());
    for (position, window) in raw.iter().enumerate() {
        let name = window.name.trim();
        let fail = |key: &'static str, message: String| MaintenanceConfigError {
            window: match name {
                "" => format!("#{}", position + 1),
                name => format!("{name:?}"),
            },
            key,
            message,
        };
        if name.is_empty() {
            return Err(fail("name", "every window needs a name".into()));
        }
        if !names.insert(name.to_owned()) {
            return Err(fail("name", "two windows have this name".into()));
        }
        let schedule = Schedule::parse(&window.schedule, &window.timezone, now).map_err(|e| match e {
            crate::maintenance::ScheduleError::Zone(_) => fail("timezone", e.to_string()),
            _ => fail("schedule", e.to_string()),
        })?;
        let duration = parse_duration(&window.duration).map_err(|e| fail("duration", e.to_string()))?;
        if duration < Duration::from_secs(1) || duration > MAX_WINDOW {
            return Err(fail(
                "duration",
                format!("{:?} must be at least 1s and at most 7d", window.duration),
            ));
        }
        let scope = Scope::parse(window.plugins.clone(), &window.matchers)
            .map_err(|e| fail("match", e.to_string()))?;
        let reason = match window.reason.trim() {
            "" => default_reason(name),
            reason => reason.to_owned(),
        };
        windows.push(Window {
            name: name.to_owned(),
            schedule,
            duration,
            scope,
            reason,
        });
    }
    Ok(windows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Vec<RawWindow> {
        #[derive(Deserialize)]
        struct File {
            maintenance: Vec<RawWindow>,
        }
        toml::from_str::<File>(text).unwrap().maintenance
    }

    const NOW: f64 = 1_780_000_000.0;

    #[test]
    fn the_example_of_the_docs_is_read() {
        let windows = validate(
            &raw(r#"
                [[maintenance]]
                name = "weekly-db"
                schedule = "0 2 * * SUN"
                duration = "2h"
                timezone = "Europe/Paris"
                plugins = ["restart-crm-api"]
                match = 'service="crm"'
                reason = "weekly DB maintenance"
            "#),
            NOW,
        )
        .unwrap();
        let w = &windows[0];
        assert_eq!(
            (w.name.as_str(), w.duration),
            ("weekly-db", Duration::from_secs(7200))
        );
        assert_eq!(
            (w.schedule.text(), w.schedule.zone()),
            ("0 2 * * SUN", "Europe/Paris")
        );
        assert_eq!(w.scope.plugins, ["restart-crm-api"]);
        assert_eq!(w.reason, "weekly DB maintenance");
        let minimal = validate(
            &raw("[[maintenance]]\nname = \"n\"\nschedule = \"@daily\"\nduration = \"1h\""),
            NOW,
        )
        .unwrap();
        assert_eq!(minimal[0].schedule.zone(), "UTC");
        assert_eq!(minimal[0].reason, "maintenance window \"n\"");
    }

    #[test]
    fn each_mistake_names_the_window_and_the_key() {
        let window = |name: &str, schedule: &str, duration: &str, extra: &str| {
            format!(
                "[[maintenance]]\nname = {name:?}\nschedule = {schedule:?}\nduration = {duration:?}\n{extra}\n"
            )
        };
        let table = [
            (
                window("a", "0 2 * *", "1h", ""),
                "a\": `schedule`: \"0 2 * *\" is not a cron schedule",
            ),
            (
                window("a", "0 2 * * SUN", "1h", "timezone = \"Mars/Olympus\""),
                "`timezone`: \"Mars/Olympus\"",
            ),
            (
                window("a", "0 2 * * SUN", "0s", ""),
                "`duration`: \"0s\" must be at least 1s",
            ),
            (window("a", "0 2 * * SUN", "8d", ""), "at most 7d"),
            (window("a", "0 2 * * SUN", "soon", ""), "`duration`"),
            (window("", "0 2 * * SUN", "1h", ""), "[[maintenance]] #1: `name`"),
            (window("a", "0 2 * * SUN", "1h", "match = 'service'"), "`match`"),
            (window("a", "0 0 30 2 *", "1h", ""), "never occurs"),
            (
                window("a", "0 2 * * SUN", "1h", "") + &window("a", "0 3 * * SUN", "1h", ""),
                "two windows have this name",
            ),
        ];
        for (text, expected) in table {
            let e = validate(&raw(&text), NOW).unwrap_err().to_string();
            assert!(e.contains(expected), "{text}\n→ {e}\nexpected {expected:?}");
        }
    }
}
