//! When a maintenance window's occurrences begin: a 5-field cron schedule
//! read in an IANA time zone.
//!
//! Daylight-saving time, as `croner` resolves it (the OCPS rules): an
//! occurrence at a local time the clocks skip (02:00 on the last Sunday of
//! March in Europe/Paris) begins at the first instant after the gap
//! (03:00 CEST); one at a local time the clocks repeat (02:00 on the last
//! Sunday of October) begins once, at the earlier of the two instants
//! (02:00 CEST). A window then lasts its `duration` of elapsed time, so
//! that it is never shorter than configured whatever the clocks do.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A cron schedule in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: Tz,
    text: String,
}

/// A schedule that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Not a 5-field cron expression.
    #[error("{text:?} is not a cron schedule of 5 fields (minute hour day month weekday): {message}")]
    Cron {
        /// The schedule as written.
        text: String,
        /// What the parser said.
        message: String,
    },
    /// Not an IANA time zone name.
    #[error("{0:?} is not an IANA time zone name such as \"Europe/Paris\" or \"UTC\"")]
    Zone(String),
    /// A schedule no date matches (`0 0 30 2 *`).
    #[error("{0:?} never occurs")]
    Never(String),
}

impl Schedule {
    /// Parses `text` (minute hour day month weekday, names such as `SUN`
    /// and `JAN` allowed) to be read in `zone`; a schedule that never
    /// occurs after `now` is refused.
    pub fn parse(text: &str, zone: &str, now: f64) -> Result<Self, ScheduleError> {
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(text).map_err(|e| ScheduleError::Cron {
            text: text.to_owned(),
            message: e.to_string(),
        })?;
        let zone: Tz = zone
            .trim()
            .parse()
            .map_err(|_| ScheduleError::Zone(zone.to_owned()))?;
        let schedule = Self {
            cron,
            zone,
            text: text.trim().to_owned(),
        };
        if schedule.next_start_after(now).is_none() {
            return Err(ScheduleError::Never(schedule.text));
        }
        Ok(schedule)
    }

    /// The schedule as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The time zone's IANA name.
    pub fn zone(&self) -> &str {
        self.zone.name()
    }

    /// The latest occurrence that began at or before `now` (unix seconds).
    pub fn latest_start_at_or_before(&self, now: f64) -> Option<f64> {
        let start = self.cron.find_previous_occurrence(&self.local(now)?, true).ok()?;
        Some(start.timestamp() as f64)
    }

    /// The first occurrence that begins after `now` (unix seconds).
    pub fn next_start_after(&self, now: f64) -> Option<f64> {
        let start = self.cron.find_next_occurrence(&self.local(now)?, false).ok()?;
        Some(start.timestamp() as f64)
    }

    /// `at` as RFC 3339 in the schedule's zone, e.g. `2026-03-29T03:00:00+02:00`.
    pub fn rfc3339(&self, at: f64) -> String {
        self.local(at)
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| format!("{at}"))
    }

    /// `now`, cut to its whole second (occurrences begin on one), in the zone.
    fn local(&self, now: f64) -> Option<DateTime<Tz>> {
        let utc = Utc.timestamp_opt(now.floor() as i64, 0).single()?;
        Some(utc.with_timezone(&self.zone))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix seconds of a UTC wall clock time.
    fn utc(text: &str) -> f64 {
        DateTime::parse_from_rfc3339(text).unwrap().timestamp() as f64
    }

    fn sundays_2am_paris() -> Schedule {
        Schedule::parse("0 2 * * SUN", "Europe/Paris", utc("2026-01-01T00:00:00Z")).unwrap()
    }

    #[test]
    fn next_and_latest_starts_in_winter_and_summer() {
        let s = sundays_2am_paris();
        // Winter (CET, UTC+1): 02:00 local is 01:00 UTC.
        let jan_sunday = utc("2026-01-04T01:00:00Z");
        assert_eq!(s.next_start_after(utc("2026-01-03T12:00:00Z")), Some(jan_sunday));
        assert_eq!(
            s.latest_start_at_or_before(jan_sunday),
            Some(jan_sunday),
            "inclusive"
        );
        assert_eq!(s.latest_start_at_or_before(jan_sunday + 0.5), Some(jan_sunday));
        assert_eq!(
            s.next_start_after(jan_sunday),
            Some(utc("2026-01-11T01:00:00Z")),
            "exclusive"
        );
        assert_eq!(
            s.latest_start_at_or_before(jan_sunday - 1.0),
            Some(utc("2025-12-28T01:00:00Z"))
        );
        // Summer (CEST, UTC+2): 02:00 local is 00:00 UTC.
        assert_eq!(
            s.next_start_after(utc("2026-06-01T00:00:00Z")),
            Some(utc("2026-06-07T00:00:00Z"))
        );
        assert_eq!(s.rfc3339(jan_sunday), "2026-01-04T02:00:00+01:00");
    }

    /// 2026-03-29, last Sunday of March: Paris goes from 02:00 CET straight
    /// to 03:00 CEST (01:00 UTC). 02:00 does not exist that day: the
    /// occurrence begins at the first instant after the gap.
    #[test]
    fn an_occurrence_in_the_spring_gap_begins_after_it() {
        let s = sundays_2am_paris();
        let after_gap = utc("2026-03-29T01:00:00Z");
        assert_eq!(s.next_start_after(utc("2026-03-28T12:00:00Z")), Some(after_gap));
        assert_eq!(s.rfc3339(after_gap), "2026-03-29T03:00:00+02:00");
        assert_eq!(
            s.latest_start_at_or_before(utc("2026-03-29T02:30:00Z")),
            Some(after_gap)
        );
        // And the week after is an ordinary summer Sunday.
        assert_eq!(s.next_start_after(after_gap), Some(utc("2026-04-05T00:00:00Z")));
    }

    /// 2026-10-25, last Sunday of October: Paris goes from 03:00 CEST back
    /// to 02:00 CET, so 02:00–03:00 happens twice. The occurrence begins
    /// once, at the first 02:00 (CEST, 00:00 UTC), not again an hour later.
    #[test]
    fn an_occurrence_in_the_autumn_repeat_begins_once_at_the_first() {
        let s = sundays_2am_paris();
        let first = utc("2026-10-25T00:00:00Z");
        assert_eq!(s.next_start_after(utc("2026-10-24T12:00:00Z")), Some(first));
        assert_eq!(s.rfc3339(first), "2026-10-25T02:00:00+02:00");
        assert_eq!(s.next_start_after(first), Some(utc("2026-11-01T01:00:00Z")));
        // In the repeated hour (02:30 CET = 01:30 UTC) it is still the first.
        assert_eq!(
            s.latest_start_at_or_before(utc("2026-10-25T01:30:00Z")),
            Some(first)
        );
    }

    #[test]
    fn bad_schedules_and_zones_are_refused_with_what_was_written() {
        let now = utc("2026-01-01T00:00:00Z");
        for bad in [
            "",
            "0 2 * *",
            "0 0 2 * * SUN",
            "61 * * * *",
            "0 2 * * FUNDAY",
            "every sunday",
        ] {
            let e = Schedule::parse(bad, "UTC", now).unwrap_err();
            assert!(matches!(e, ScheduleError::Cron { .. }), "{bad:?}: {e}");
            assert!(e.to_string().contains("5 fields"), "{e}");
        }
        let e = Schedule::parse("0 2 * * SUN", "Europe/Pariss", now).unwrap_err();
        assert_eq!(e, ScheduleError::Zone("Europe/Pariss".into()));
        assert!(matches!(
            Schedule::parse("0 0 30 2 *", "UTC", now),
            Err(ScheduleError::Never(_))
        ));
        assert_eq!(Schedule::parse("* * * * *", "UTC", now).unwrap().zone(), "UTC");
    }
}
