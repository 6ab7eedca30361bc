//! `window_opened` and `window_closed`: each window's transitions, recorded
//! once each by a task of their own that looks every second.
//!
//! What was last recorded of each window is read back from the trail at
//! start, so that a restart during a window does not record it opened
//! again, and a window that closed while the host was down is recorded
//! closed (with `closed_at`, its end) at once. The trail is read back as
//! far as twice the longest window; a window whose `window_opened` is
//! older than that (an always-open schedule whose occurrences overlap)
//! is recorded opened once more at start.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use autoheal_core::audit::{AuditLog, line_has_kind, line_ts, scan_backwards};
use autoheal_core::event::{Event, EventBody, WindowClosed, WindowOpened};
use autoheal_core::util::unix_now;
use tokio_util::sync::CancellationToken;

use super::{Phase, Window};

const KINDS: &[&str] = &["window_opened", "window_closed"];

/// Each window's transitions, as recorded.
pub struct Announcer {
    windows: Arc<[Window]>,
    /// The windows recorded open, with their end as last seen.
    open: HashMap<String, f64>,
}

impl Announcer {
    /// What was last recorded of `windows`, read from the trail at `audit_path`.
    pub fn rebuild(windows: Arc<[Window]>, audit_path: &Path, now: f64) -> std::io::Result<Self> {
        let longest = windows.iter().map(|w| w.duration).max().unwrap_or(Duration::ZERO);
        let since = now - 2.0 * longest.as_secs_f64();
        let mut last: HashMap<String, Option<f64>> = HashMap::new();
        if !windows.is_empty() {
            scan_backwards(audit_path, |line| {
                if line_ts(line).is_some_and(|ts| ts < since) || last.len() == windows.len() {
                    return ControlFlow::Break(());
                }
                if !line_has_kind(line, KINDS) {
                    return ControlFlow::Continue(());
                }
                // Newest first: the first seen of a window is its last.
                match serde_json::from_slice::<Event>(line).map(|e| e.body) {
                    Ok(EventBody::WindowOpened(opened)) => {
                        last.entry(opened.name).or_insert(Some(opened.until));
                    }
                    Ok(EventBody::WindowClosed(closed)) => {
                        last.entry(closed.name).or_insert(None);
                    }
                    _ => {}
                }
                ControlFlow::Continue(())
            })?;
        }
        let open = last
            .into_iter()
            .filter_map(|(name, until)| Some((name, until?)))
            .collect();
        Ok(Self { windows, open })
    }

    /// The transitions since the last look, to record.
    pub fn tick(&mut self, now: f64) -> Vec<EventBody> {
        let mut events = Vec::new();
        for window in self.windows.iter() {
            let recorded = self.open.get(&window.name).copied();
            match (window.phase_at(now), recorded) {
                (Phase::Open { since, until }, None) => {
                    events.push(EventBody::WindowOpened(WindowOpened {
                        name: window.name.clone(),
                        opened_at: since,
                        reason: window.reason.clone(),
                        schedule: window.schedule.text().to_owned(),
                        until,
                    }));
                    self.open.insert(window.name.clone(), until);
                }
                // An occurrence that began while open moves its end.
                (Phase::Open { until, .. }, Some(_)) => {
                    self.open.insert(window.name.clone(), until);
                }
                (Phase::Closed, Some(until)) => {
                    events.push(EventBody::WindowClosed(WindowClosed {
                        closed_at: until.min(now),
                        name: window.name.clone(),
                        schedule: window.schedule.text().to_owned(),
                    }));
                    self.open.remove(&window.name);
                }
                (Phase::Closed, None) => {}
            }
        }
        // A window no longer configured, recorded open: it is over.
        self.open
            .retain(|name, _| self.windows.iter().any(|w| &w.name == name));
        events
    }

    /// Looks each second until `shutdown`, recording what changed.
    pub async fn run(mut self, audit: Arc<AuditLog>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let events = self.tick(unix_now());
            if !events.is_empty() {
                audit.emit_all(events);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, window};
    use super::*;

    fn announcer(windows: Vec<Window>, dir: &tempfile::TempDir, now: f64) -> Announcer {
        Announcer::rebuild(windows.into(), &dir.path().join("audit.jsonl"), now).unwrap()
    }

    fn kinds(events: &[EventBody]) -> Vec<&'static str> {
        events.iter().map(|e| e.kind().as_str()).collect()
    }

    #[test]
    fn each_transition_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let w = window("nightly", "0 2 * * *", "UTC", 1, &[], "");
        let mut a = announcer(vec![w], &dir, at("2026-05-01T01:00:00Z"));
        assert!(a.tick(at("2026-05-01T01:59:59Z")).is_empty());
        let opened = a.tick(at("2026-05-01T02:00:00Z"));
        assert_eq!(kinds(&opened), ["window_opened"]);
        let EventBody::WindowOpened(o) = &opened[0] else {
            unreachable!()
        };
        assert_eq!(
            (o.opened_at, o.until),
            (at("2026-05-01T02:00:00Z"), at("2026-05-01T03:00:00Z"))
        );
        assert!(a.tick(at("2026-05-01T02:30:00Z")).is_empty());
        let closed = a.tick(at("2026-05-01T03:00:01Z"));
        assert_eq!(kinds(&closed), ["window_closed"]);
        let EventBody::WindowClosed(c) = &closed[0] else {
            unreachable!()
        };
        assert_eq!(c.closed_at, at("2026-05-01T03:00:00Z"));
        assert!(a.tick(at("2026-05-01T03:00:02Z")).is_empty());
    }

    /// A restart during a window: opened is not recorded again; a window
    /// that closed while the host was down is recorded closed at once.
    #[tokio::test]
    async fn a_restart_reads_back_what_was_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let windows = || {
            vec![
                window("nightly", "0 2 * * *", "UTC", 1, &[], ""),
                window("hourly", "0 * * * *", "UTC", 1, &[], ""),
            ]
        };
        let start = at("2026-05-01T02:00:10Z");
        {
            let (audit, _) =
                AuditLog::open(&path, autoheal_core::audit::FsyncPolicy::EveryBatch, None).unwrap();
            let mut a = Announcer::rebuild(windows().into(), &path, start).unwrap();
            let events = a.tick(start);
            assert_eq!(kinds(&events), ["window_opened", "window_opened"]);
            audit.emit_all(events);
            audit.flush().await.unwrap();
        }
        // Back during both.
        let mut a = Announcer::rebuild(windows().into(), &path, start + 60.0).unwrap();
        assert!(a.tick(start + 60.0).is_empty());
        // Back after `nightly` closed; `hourly` is open again (a new occurrence).
        let later = at("2026-05-01T04:10:00Z");
        let mut a = Announcer::rebuild(windows().into(), &path, later).unwrap();
        let events = a.tick(later);
        assert_eq!(kinds(&events), ["window_closed"]);
        let EventBody::WindowClosed(c) = &events[0] else {
            unreachable!()
        };
        assert_eq!(
            (c.name.as_str(), c.closed_at),
            ("nightly", at("2026-05-01T03:00:00Z"))
        );
    }
}
