//! The arithmetic of a plugin's grace (`[match] firing_for`): since when an
//! alert has been firing, by its `startsAt`, and until when it is held.
//! Pure, so that each odd `startsAt` is a line of a table test.

use std::time::Duration;

use autoheal_core::alert::Alert;

/// Since when `alert` has been firing (unix seconds), as its `startsAt`
/// says. A `startsAt` that is missing, unparseable or in the future (a
/// sender's clock ahead of ours) cannot prove the alert is old, so it
/// counts as `now`: the alert is held for the whole grace rather than
/// acted on at once — waiting too long is the safe side of a grace.
pub fn firing_since(alert: &Alert, now: f64) -> f64 {
    chrono::DateTime::parse_from_rfc3339(alert.starts_at.trim())
        .ok()
        .map(|t| t.timestamp_micros() as f64 / 1e6)
        .filter(|since| *since <= now)
        .unwrap_or(now)
}

/// Until when `alert`, arriving at `now`, is held under a grace of
/// `firing_for`; `None` when it has been firing long enough to be decided
/// now.
pub fn held_until(firing_for: Duration, alert: &Alert, now: f64) -> Option<f64> {
    let until = firing_since(alert, now) + firing_for.as_secs_f64();
    (until > now).then_some(until)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(starts_at: &str) -> Alert {
        let mut alert: Alert = serde_json::from_str(r#"{"status":"firing"}"#).unwrap();
        alert.starts_at = starts_at.to_owned();
        alert
    }

    /// 2026-11-23T10:00:00Z.
    const NOW: f64 = 1_795_428_000.0;
    const TWO_MINUTES: Duration = Duration::from_secs(120);

    #[test]
    fn starts_at_is_read_as_rfc3339_with_any_fraction_and_offset() {
        assert_eq!(firing_since(&alert("2026-11-23T10:00:00Z"), NOW), NOW);
        assert_eq!(firing_since(&alert("2026-11-23T09:59:30.5Z"), NOW), NOW - 29.5);
        // Alertmanager writes nanoseconds, and a zone offset is the same instant.
        let nanos = firing_since(&alert("2026-11-23T09:59:00.123456789Z"), NOW);
        assert!((nanos - (NOW - 59.876544)).abs() < 1e-5, "{nanos}");
        assert_eq!(
            firing_since(&alert("2026-11-23T11:58:00+02:00"), NOW),
            NOW - 120.0
        );
    }

    #[test]
    fn a_start_that_proves_nothing_counts_as_now() {
        for starts_at in ["", "yesterday", "0001-01-01", "2026-11-23T10:05:00Z"] {
            assert_eq!(firing_since(&alert(starts_at), NOW), NOW, "{starts_at:?}");
            assert_eq!(
                held_until(TWO_MINUTES, &alert(starts_at), NOW),
                Some(NOW + 120.0),
                "{starts_at:?} is held for the whole grace"
            );
        }
    }

    #[test]
    fn an_alert_is_held_for_what_is_left_of_the_grace() {
        let young = alert("2026-11-23T09:59:30Z");
        assert_eq!(held_until(TWO_MINUTES, &young, NOW), Some(NOW + 90.0));
        let just_old_enough = alert("2026-11-23T09:58:00Z");
        assert_eq!(held_until(TWO_MINUTES, &just_old_enough, NOW), None);
        let long_ago = alert("2026-11-22T10:00:00Z");
        assert_eq!(held_until(TWO_MINUTES, &long_ago, NOW), None);
    }
}
