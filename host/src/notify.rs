//! Notifications through Alertmanager: autoheal raises its own alerts
//! (`AutohealActionFailed`, `AutohealBudgetExhausted`,
//! `AutohealRemediationIneffective`, `AutohealApprovalRequested`,
//! `AutohealRepeatCapReached`, `AutohealNotRemediating`) with `POST
//! /api/v2/alerts`, so that the team's existing route (`alertname=~"Autoheal.*"`)
//! carries them to whatever it uses, with no chat integration of ours.
//!
//! Each notice fires for `[notify] hold` after the last event that raised it
//! (a new failure or refusal extends it) — an approval's, until the
//! approval ends — and is posted again while it fires, as Alertmanager
//! expects of a client; it then ends with `endsAt`, which Alertmanager
//! turns into a resolved notification.
//!
//! `AutohealNotRemediating` is the one raised by time rather than by an
//! event: an alert autoheal declines (a cooldown, `overloaded`, a budget,
//! or its plugin's `skipped`) and that goes on firing for `[notify]
//! not_remediating_after` reaches people, with the reason, until it
//! resolves or an action on it succeeds.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use autoheal_core::event::{ActionFinished, Event, EventBody, SkipReason};
use autoheal_core::failover::{Failure, Members};
use autoheal_core::invocation::Capability;
use autoheal_core::util::unix_now;

use crate::metrics::Metrics;

/// How often firing notices are posted again (Alertmanager forgets an alert
/// whose `endsAt` passes; ours is always `hold` ahead).
const RESEND: Duration = Duration::from_secs(60);
/// Fewest seconds between two posts, so that a burst of failures is one post.
const BATCH: Duration = Duration::from_millis(200);
/// How long a decline is taken as evidence that its alert still fires:
/// longer than the shipped route's `repeat_interval` (10m), with which
/// Alertmanager sends a firing alert again (and it is declined again).
const STILL_FIRING_EVIDENCE: Duration = Duration::from_secs(15 * 60);
/// Declined alerts tracked at once; beyond, new ones are not (a storm of
/// distinct alerts cannot fill memory through this).
const MAX_DECLINES: usize = 10_000;

/// The notices raised and when each ends.
pub struct Notifier {
    hold: Duration,
    console: String,
    notices: Mutex<HashMap<BTreeMap<String, String>, Notice>>,
    /// How long a declined alert may fire before people are told.
    not_remediating_after: Duration,
    /// Alerts autoheal declined and has not acted on since, by fingerprint.
    declines: Mutex<HashMap<String, Declined>>,
    changed: Notify,
}

/// A notice as [`Notifier::not_remediating`] computes it.
struct RaisedNotice {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: f64,
    ends_at: f64,
}

/// An alert autoheal declined to act on, and has not acted on since.
struct Declined {
    alertname: String,
    /// The first decline of this run of declines.
    first: f64,
    /// The latest one.
    last: f64,
    /// The latest reason and its words.
    reason: &'static str,
    detail: String,
}

struct Notice {
    annotations: BTreeMap<String, String>,
    starts_at: f64,
    ends_at: f64,
    /// Posted since it was last raised or extended.
    posted: bool,
}

/// The alertnames of the notices, each raised by one kind of event (see
/// `Notifier::observe`); docs/notifications.md has a row for each.
pub const NOTICES: [&str; 6] = [
    ACTION_FAILED,
    BUDGET_EXHAUSTED,
    REMEDIATION_INEFFECTIVE,
    APPROVAL_REQUESTED,
    REPEAT_CAP_REACHED,
    NOT_REMEDIATING,
];
const ACTION_FAILED: &str = "AutohealActionFailed";
const BUDGET_EXHAUSTED: &str = "AutohealBudgetExhausted";
const REMEDIATION_INEFFECTIVE: &str = "AutohealRemediationIneffective";
const APPROVAL_REQUESTED: &str = "AutohealApprovalRequested";
const NOT_REMEDIATING: &str = "AutohealNotRemediating";
const REPEAT_CAP_REACHED: &str = "AutohealRepeatCapReached";

/// A repeat cap's notice: one per plugin, cap and cooldown key (no key for
/// a cap over all the plugin's keys, which one notice covers).
fn repeat_cap_labels(skip: &autoheal_core::event::DecisionSkip) -> BTreeMap<String, String> {
    let all_keys = skip.repeat_cap_key.as_deref() == Some("max_actions_all_keys");
    let key = if all_keys {
        ""
    } else {
        skip.cooldown_key.as_deref().unwrap_or("")
    };
    labels(&[
        ("alertname", REPEAT_CAP_REACHED),
        ("plugin", skip.plugin.as_deref().unwrap_or("")),
        ("cap", skip.repeat_cap.as_deref().unwrap_or("")),
        ("limit", skip.repeat_cap_key.as_deref().unwrap_or("")),
        ("cooldown_key", key),
        ("autoheal_alertname", if all_keys { "" } else { &skip.alertname }),
    ])
}

/// The container an `action_fail` is about: the one it restarted, else the
/// first restart it attempted (refused or failed), else none.
fn failure_target(failed: &ActionFinished) -> &str {
    failed
        .target
        .as_deref()
        .or_else(|| {
            failed
                .calls
                .iter()
                .find(|call| call.capability == Capability::ContainersRestart)
                .map(|call| call.target.as_str())
        })
        .unwrap_or("")
}

impl Notifier {
    /// Notices that fire for `hold` after their last cause; each links to
    /// `console`. An alert declined for `not_remediating_after` is one too.
    pub fn new(hold: Duration, not_remediating_after: Duration, console: String) -> Arc<Self> {
        Arc::new(Self {
            hold,
            console,
            notices: Mutex::default(),
            not_remediating_after,
            declines: Mutex::default(),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<BTreeMap<String, String>, Notice>> {
        self.notices.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Raises, extends or ends the notice an event calls for, if any. Cheap:
    /// called for every event, on the path that records it.
    pub fn observe(&self, event: &Event) {
        self.track_declines(event);
        let hold_end = event.ts + self.hold.as_secs_f64();
        let (labels, summary, ends_at) = match &event.body {
            // A dry-run's failure changed nothing either: it is in the
            // trail and in `mode="dry_run"` series, and pages nobody.
            EventBody::ActionFail(failed) if !failed.dry_run => (
                labels(&[
                    ("alertname", ACTION_FAILED),
                    ("plugin", &failed.plugin),
                    // The container restarted, else the one whose restart
                    // was refused (denied, circuit open): a failure before
                    // any restart still says where.
                    ("target", failure_target(failed)),
                    ("autoheal_alertname", &failed.alertname),
                    ("mode", "real"),
                ]),
                format!(
                    "{} failed on {}: {}",
                    failed.plugin,
                    failed.alertname,
                    failed.error.as_deref().unwrap_or("no error given")
                ),
                hold_end,
            ),
            EventBody::DecisionSkip(skip) if skip.reason == SkipReason::Budget => {
                let budget = skip.budget.map_or("unknown", |b| b.as_str());
                (
                    labels(&[("alertname", BUDGET_EXHAUSTED), ("budget", budget)]),
                    format!(
                        "a real action for {} was not started: {}",
                        skip.alertname, skip.detail
                    ),
                    hold_end,
                )
            }
            // Raised by the first skip of a cap, not extended by the ones
            // after it (each would post again): it fires until the cap has
            // room again, or `hold` if that is later.
            EventBody::DecisionSkip(skip) if skip.reason == SkipReason::RepeatCap => {
                let labels = repeat_cap_labels(skip);
                if self.lock().get(&labels).is_some_and(|n| n.ends_at > event.ts) {
                    return;
                }
                let until = skip.repeat_cap_until.unwrap_or(hold_end).max(hold_end);
                (
                    labels,
                    format!(
                        "{} acted as often as its cap allows and did not act on {} ({}): {}; a remediation \
                         that keeps being needed is not working, look at {}",
                        skip.plugin.as_deref().unwrap_or("a plugin"),
                        skip.alertname,
                        skip.fingerprint,
                        skip.detail,
                        skip.cooldown_key.as_deref().unwrap_or("its alerts"),
                    ),
                    until,
                )
            }
            // Only a real chain pages: a dry-run changed nothing, so its
            // alert firing on says nothing of a fix (while etcd had no
            // quorum every replica paged for every alert). The `mode`
            // label stays, always `real`, for the routes that match it.
            EventBody::RemediationIneffective(step) if step.next.is_none() && !step.dry_run => (
                labels(&[
                    ("alertname", REMEDIATION_INEFFECTIVE),
                    ("plugin", &step.plugin),
                    ("autoheal_alertname", &step.alertname),
                    ("mode", "real"),
                ]),
                format!(
                    "{} still fires after the last step of its remediation ({}, step {}): {}",
                    step.alertname, step.plugin, step.step, step.detail
                ),
                hold_end,
            ),
            // Fires while the approval waits; ends when it does.
            EventBody::ApprovalRequested(request) => (
                approval_labels(&request.approval, &request.plugin, &request.alertname),
                format!(
                    "{} waits for an operator's approval on {}: {}",
                    request.plugin,
                    request.alertname,
                    request.preview.join("; ")
                ),
                request.expires_at,
            ),
            EventBody::ApprovalGranted(ended)
            | EventBody::ApprovalDenied(ended)
            | EventBody::ApprovalExpired(ended)
            | EventBody::ApprovalCancelled(ended) => {
                let labels = approval_labels(&ended.approval, &ended.plugin, &ended.alertname);
                self.end_notice(&labels, event.ts);
                return;
            }
            _ => return,
        };
        let annotations = [
            ("summary".to_owned(), summary),
            ("console".to_owned(), self.console.clone()),
        ]
        .into();
        let mut notices = self.lock();
        let notice = notices.entry(labels).or_insert(Notice {
            annotations: BTreeMap::new(),
            starts_at: event.ts,
            ends_at,
            posted: false,
        });
        notice.annotations = annotations;
        notice.ends_at = ends_at;
        notice.posted = false;
        drop(notices);
        self.changed.notify_one();
    }

    /// Follows which firing alerts autoheal declines and which it acts on.
    fn track_declines(&self, event: &Event) {
        let (fingerprint, alertname, declined) = match &event.body {
            EventBody::DecisionSkip(skip) => match skip.reason {
                SkipReason::Cooldown | SkipReason::Overloaded | SkipReason::Budget => (
                    &skip.fingerprint,
                    &skip.alertname,
                    Some((skip.reason.as_str(), skip.detail.clone())),
                ),
                SkipReason::Resolved => (&skip.fingerprint, &skip.alertname, None),
                _ => return,
            },
            // The plugin ran and decided not to act: the alert is not remediated.
            EventBody::ActionSkipped(skipped) if !skipped.dry_run => (
                &skipped.fingerprint,
                &skipped.alertname,
                Some((
                    "plugin_skipped",
                    format!(
                        "{}: {}",
                        skipped.plugin,
                        skipped.output.as_deref().unwrap_or("no reason given")
                    ),
                )),
            ),
            // Acted on: whatever was said is over (a failure is told by
            // AutohealActionFailed; a start alone says nothing yet).
            EventBody::ActionOk(done) => (&done.fingerprint, &done.alertname, None),
            _ => return,
        };
        let mut declines = self.declines.lock().unwrap_or_else(|p| p.into_inner());
        let Some((reason, detail)) = declined else {
            // Acted on, or resolved: whatever was said is over.
            if declines.remove(fingerprint).is_some() {
                drop(declines);
                self.end_notice(&not_remediating_labels(alertname, fingerprint), event.ts);
            }
            return;
        };
        if declines.len() >= MAX_DECLINES && !declines.contains_key(fingerprint) {
            return;
        }
        let fresh = !declines.contains_key(fingerprint);
        let entry = declines.entry(fingerprint.to_owned()).or_insert(Declined {
            alertname: alertname.to_owned(),
            first: event.ts,
            last: event.ts,
            reason,
            detail: String::new(),
        });
        entry.last = event.ts;
        entry.reason = reason;
        entry.detail = detail;
        // Only this alert's notice can change: one already due is extended
        // here; a new one wakes the posting loop, which sleeps until the
        // next decline falls due.
        let due = self.not_remediating(fingerprint, entry, event.ts);
        drop(declines);
        match due {
            Some(notice) => self.raise(vec![notice]),
            None if fresh => self.changed.notify_one(),
            None => {}
        }
    }

    /// Raises (or extends) `AutohealNotRemediating` for every alert declined
    /// for `not_remediating_after` that still shows signs of firing; forgets
    /// the declines that stopped (the posting loop's sweep).
    fn raise_not_remediating(&self, now: f64) {
        let evidence = STILL_FIRING_EVIDENCE.as_secs_f64();
        let mut declines = self.declines.lock().unwrap_or_else(|p| p.into_inner());
        // An alert not declined again for that long has stopped firing (or
        // stopped reaching autoheal): forget it; its notice runs out.
        declines.retain(|_, d| d.last + evidence > now);
        let due: Vec<RaisedNotice> = declines
            .iter()
            .filter_map(|(fingerprint, d)| self.not_remediating(fingerprint, d, now))
            .collect();
        drop(declines);
        self.raise(due);
    }

    /// The `AutohealNotRemediating` notice of a declined alert, if it has
    /// been declined for `not_remediating_after` by `now`. Its text does not
    /// change with the clock, so it is posted again only when its reason does.
    fn not_remediating(&self, fingerprint: &str, declined: &Declined, now: f64) -> Option<RaisedNotice> {
        let due_at = declined.first + self.not_remediating_after.as_secs_f64();
        if due_at > now {
            return None;
        }
        let summary = format!(
            "{} has fired for {} since autoheal declined to remediate it ({}): {}",
            declined.alertname,
            humantime::format_duration(self.not_remediating_after),
            declined.reason,
            declined.detail
        );
        Some(RaisedNotice {
            labels: not_remediating_labels(&declined.alertname, fingerprint),
            annotations: [
                ("summary".to_owned(), summary),
                ("console".to_owned(), self.console.clone()),
            ]
            .into(),
            starts_at: due_at,
            ends_at: declined.last + STILL_FIRING_EVIDENCE.as_secs_f64(),
        })
    }

    /// Sets these notices; the posting loop is woken only if one changed.
    fn raise(&self, raised: Vec<RaisedNotice>) {
        let mut changed = false;
        let mut notices = self.lock();
        for raised in raised {
            let notice = notices.entry(raised.labels).or_insert(Notice {
                annotations: BTreeMap::new(),
                starts_at: raised.starts_at,
                ends_at: raised.ends_at,
                posted: false,
            });
            if notice.annotations != raised.annotations || notice.ends_at != raised.ends_at {
                notice.annotations = raised.annotations;
                notice.ends_at = raised.ends_at;
                notice.posted = false;
                changed = true;
            }
        }
        drop(notices);
        if changed {
            self.changed.notify_one();
        }
    }

    /// When the next declined alert reaches `not_remediating_after`.
    fn next_decline_due(&self) -> Option<f64> {
        let after = self.not_remediating_after.as_secs_f64();
        self.declines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|d| d.first + after)
            .reduce(f64::min)
    }

    /// Ends the notice with these labels now, if it fires.
    fn end_notice(&self, labels: &BTreeMap<String, String>, now: f64) {
        if let Some(notice) = self.lock().get_mut(labels) {
            notice.ends_at = now;
            notice.posted = false;
        }
        self.changed.notify_one();
    }

    /// The alerts to post now: those raised or extended since the last post,
    /// or every one that fires when `all` (the periodic resend); a notice
    /// past its end is posted once more, ended, and forgotten.
    fn take_due(&self, all: bool, now: f64) -> Vec<Value> {
        let rfc3339 = |ts: f64| {
            chrono::DateTime::from_timestamp_millis((ts * 1000.0) as i64)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        let mut due = Vec::new();
        self.lock().retain(|labels, notice| {
            let ended = notice.ends_at <= now;
            if all || !notice.posted || ended {
                due.push(json!({
                    "labels": labels,
                    "annotations": notice.annotations,
                    "startsAt": rfc3339(notice.starts_at),
                    "endsAt": rfc3339(notice.ends_at),
                    "generatorURL": notice.annotations.get("console"),
                }));
                notice.posted = true;
            }
            !ended
        });
        due
    }

    /// When the next notice ends.
    fn next_end(&self) -> Option<f64> {
        self.lock().values().map(|n| n.ends_at).reduce(f64::min)
    }

    /// Posts notices to `alertmanager` until `shutdown`: new ones within
    /// `BATCH`, all firing ones every `RESEND`, ended ones once. Each post
    /// goes to every member, as Alertmanager asks of its clients (members do
    /// not pass alerts on to each other; they de-duplicate notifications).
    pub async fn run(
        self: Arc<Self>,
        client: reqwest::Client,
        alertmanager: Members,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) {
        let mut last_resend = tokio::time::Instant::now();
        loop {
            let now = unix_now();
            let until_end = [self.next_end(), self.next_decline_due().filter(|due| *due > now)]
                .into_iter()
                .flatten()
                .reduce(f64::min)
                .map(|at| Duration::from_secs_f64((at - now).max(0.0)))
                .unwrap_or(RESEND);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.changed.notified() => tokio::time::sleep(BATCH).await,
                _ = tokio::time::sleep(until_end.min(RESEND)) => {}
            }
            let resend = last_resend.elapsed() >= RESEND;
            if resend {
                last_resend = tokio::time::Instant::now();
            }
            self.raise_not_remediating(unix_now());
            let due = self.take_due(resend, unix_now());
            if due.is_empty() {
                continue;
            }
            let sent = alertmanager.every(|base| post_notices(&client, base, &due)).await;
            for (url, result) in &sent {
                if let Err(PostError(e)) = result {
                    tracing::warn!(url = %url, error = %e, notices = due.len(), "could not post notifications to Alertmanager");
                }
            }
            // One member that took them is enough: it notifies, and the
            // others learn from it that it did.
            if sent.iter().any(|(_, result)| result.is_ok()) {
                metrics.notifications_posted(due.len() as u64, "ok");
            } else {
                // The next resend tries again; the notices stay raised.
                metrics.notifications_posted(due.len() as u64, "failed");
            }
        }
    }
}

/// One member's refusal of, or silence to, a post of notices.
struct PostError(reqwest::Error);

/// A 4xx is an answer (the member is up); anything else is not.
impl Failure for PostError {
    fn try_next(&self) -> bool {
        self.0.status().is_none_or(|status| status.is_server_error())
    }
}

/// Posts the notices to the member at `base`.
async fn post_notices(client: &reqwest::Client, base: String, notices: &[Value]) -> Result<(), PostError> {
    let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
    client
        .post(&url)
        .timeout(Duration::from_secs(10))
        .json(notices)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map(drop)
        .map_err(PostError)
}

fn not_remediating_labels(alertname: &str, fingerprint: &str) -> BTreeMap<String, String> {
    labels(&[
        ("alertname", NOT_REMEDIATING),
        ("autoheal_alertname", alertname),
        ("fingerprint", fingerprint),
    ])
}

fn approval_labels(approval: &str, plugin: &str, alertname: &str) -> BTreeMap<String, String> {
    labels(&[
        ("alertname", APPROVAL_REQUESTED),
        ("approval", approval),
        ("plugin", plugin),
        ("autoheal_alertname", alertname),
    ])
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_core::event::{Budget, DecisionSkip};

    fn budget_skip(ts: f64) -> Event {
        let alert: autoheal_core::alert::Alert = serde_json::from_value(json!({
            "status": "firing", "labels": {"alertname": "CrmDown"}
        }))
        .unwrap();
        Event {
            id: 1,
            ts,
            replica: None,
            body: EventBody::DecisionSkip(DecisionSkip {
                budget: Some(Budget::MaxActions),
                ..DecisionSkip::new(&alert, SkipReason::Budget, "2 real actions".into())
            }),
        }
    }

    #[test]
    fn every_notice_is_documented_and_named_where_notify_is_configured() {
        let page = include_str!("../../docs/notifications.md");
        let config = include_str!("../../docs/configuration.md");
        let enabled_row = config
            .lines()
            .find(|line| line.starts_with("| `[notify] enabled`"))
            .expect("docs/configuration.md has the [notify] enabled row");
        for notice in NOTICES {
            let row = format!("| `{notice}` |");
            assert!(
                page.contains(&row),
                "docs/notifications.md has no row for {notice}"
            );
            assert!(
                enabled_row.contains(&format!("`{notice}`")),
                "the [notify] enabled row omits {notice}"
            );
        }
        let rows = page
            .lines()
            .filter(|line| line.starts_with("| `Autoheal"))
            .count();
        assert_eq!(
            rows,
            NOTICES.len(),
            "docs/notifications.md lists a notice that does not exist"
        );
    }

    #[test]
    fn a_failure_before_any_restart_names_the_container_it_was_refused() {
        let notifier = Notifier::new(
            Duration::from_secs(300),
            Duration::from_secs(300),
            "http://autoheal/console".into(),
        );
        let failed: Event = serde_json::from_value(json!({
            "id": 1, "ts": 1000.0, "kind": "action_fail",
            "alertname": "ServiceDown", "fingerprint": "f1", "status": "firing",
            "plugin": "restart-by-label", "plugin_version": "1", "dry_run": false,
            "duration_ms": 3.0, "reason": "plugin_error", "error": "restart refused",
            "logs": [], "targets": [], "cmd": "", "output": null,
            "calls": [{"capability": "containers.restart", "target": "billing",
                       "outcome": "denied", "detail": "not in the allow-list"}]
        }))
        .unwrap();
        notifier.observe(&failed);
        let due = notifier.take_due(false, 1001.0);
        assert_eq!(due[0]["labels"]["alertname"], "AutohealActionFailed");
        assert_eq!(due[0]["labels"]["target"], "billing", "{due:#?}");
    }

    #[test]
    fn a_repeat_cap_notice_is_raised_by_the_first_skip_and_lasts_until_the_cap_has_room() {
        let notifier = Notifier::new(
            Duration::from_secs(300),
            Duration::from_secs(300),
            "http://autoheal/console".into(),
        );
        let skip = |id: u64, ts: f64| -> Event {
            serde_json::from_value(json!({
                "id": id, "ts": ts, "kind": "decision_skip",
                "alertname": "CrmDown", "fingerprint": "f1", "status": "firing",
                "reason": "repeat_cap", "plugin": "restart-crm-api",
                "detail": "2 actions in the last 1h (limits.max_actions \"2/1h\")",
                "cooldown_key": "restart-crm-api|CrmDown", "repeat_cap": "2/1h",
                "repeat_cap_key": "max_actions", "repeat_cap_until": 4600.0
            }))
            .unwrap()
        };
        notifier.observe(&skip(1, 1000.0));
        let due = notifier.take_due(false, 1001.0);
        assert_eq!(due.len(), 1, "{due:#?}");
        assert_eq!(due[0]["labels"]["alertname"], "AutohealRepeatCapReached");
        assert_eq!(due[0]["labels"]["cap"], "2/1h");
        assert_eq!(due[0]["labels"]["cooldown_key"], "restart-crm-api|CrmDown");
        let summary = due[0]["annotations"]["summary"].as_str().unwrap();
        assert!(
            summary.contains("CrmDown") && summary.contains("\"2/1h\""),
            "{summary}"
        );
        // The skips after the first do not post it again.
        notifier.observe(&skip(2, 1010.0));
        assert!(notifier.take_due(false, 1011.0).is_empty());
    }

    #[test]
    fn an_approval_notice_fires_until_the_approval_ends() {
        use autoheal_core::event::{ApprovalCause, ApprovalEnded, ApprovalRequested};
        let notifier = Notifier::new(
            Duration::from_secs(300),
            Duration::from_secs(300),
            "http://autoheal/console".into(),
        );
        let alert: autoheal_core::alert::Alert = serde_json::from_value(json!({
            "status": "firing", "labels": {"alertname": "CrmDown"}, "fingerprint": "f1"
        }))
        .unwrap();
        let request = ApprovalRequested {
            alert,
            alertname: "CrmDown".into(),
            approval: "ab12".into(),
            approvals_required: None,
            approvers: Vec::new(),
            calls: Vec::new(),
            chain: None,
            cause: ApprovalCause::Manifest,
            component_hash: None,
            cooldown_key: "p|CrmDown".into(),
            expires_at: 1900.0,
            fingerprint: "f1".into(),
            manifest_hash: None,
            plugin: "restart-crm-api".into(),
            plugin_version: "1".into(),
            preview: vec!["restart crm-api — running, up 3h 12m, restart count 2".into()],
            requested_by: None,
            summary: None,
        };
        notifier.observe(&Event {
            id: 1,
            ts: 1000.0,
            replica: None,
            body: EventBody::ApprovalRequested(request),
        });
        let due = notifier.take_due(false, 1001.0);
        assert_eq!(due[0]["labels"]["alertname"], "AutohealApprovalRequested");
        assert_eq!(due[0]["labels"]["approval"], "ab12");
        assert!(
            due[0]["annotations"]["summary"]
                .as_str()
                .unwrap()
                .contains("up 3h 12m")
        );
        assert_eq!(
            due[0]["endsAt"], "1970-01-01T00:31:40.000Z",
            "until the approval expires"
        );
        let granted = ApprovalEnded {
            alertname: "CrmDown".into(),
            approval: "ab12".into(),
            approved_by: Vec::new(),
            by: Some("alice".into()),
            by_comment: None,
            by_kind: None,
            by_name: None,
            comment: None,
            fingerprint: "f1".into(),
            plugin: "restart-crm-api".into(),
            reason: None,
        };
        notifier.observe(&Event {
            id: 2,
            ts: 1010.0,
            replica: None,
            body: EventBody::ApprovalGranted(granted),
        });
        let ended = notifier.take_due(false, 1011.0);
        assert_eq!(ended.len(), 1);
        assert_eq!(
            ended[0]["endsAt"], "1970-01-01T00:16:50.000Z",
            "ended when it was granted"
        );
        assert!(notifier.take_due(true, 1012.0).is_empty(), "and forgotten");
    }

    #[test]
    fn a_notice_is_posted_once_then_with_every_resend_then_ended_once() {
        let notifier = Notifier::new(
            Duration::from_secs(300),
            Duration::from_secs(300),
            "http://autoheal/console".into(),
        );
        notifier.observe(&budget_skip(1000.0));
        notifier.observe(&budget_skip(1010.0));
        let due = notifier.take_due(false, 1011.0);
        assert_eq!(due.len(), 1, "the same cause is one notice: {due:#?}");
        assert_eq!(due[0]["labels"]["alertname"], "AutohealBudgetExhausted");
        assert_eq!(due[0]["labels"]["budget"], "max_actions");
        assert!(
            due[0]["annotations"]["summary"]
                .as_str()
                .unwrap()
                .contains("CrmDown")
        );
        assert_eq!(
            due[0]["endsAt"], "1970-01-01T00:21:50.000Z",
            "held 300 s after the last cause"
        );
        assert!(notifier.take_due(false, 1012.0).is_empty(), "posted already");
        assert_eq!(
            notifier.take_due(true, 1100.0).len(),
            1,
            "the resend posts it again"
        );
        let ended = notifier.take_due(false, 1310.0);
        assert_eq!(ended.len(), 1, "posted once more as it ends");
        assert!(notifier.take_due(true, 1400.0).is_empty(), "and forgotten");
    }

    fn skip(ts: f64, reason: SkipReason, status: &str) -> Event {
        let alert: autoheal_core::alert::Alert = serde_json::from_value(json!({
            "status": status, "labels": {"alertname": "CrmDown"}, "fingerprint": "f1"
        }))
        .unwrap();
        Event {
            id: 1,
            ts,
            replica: None,
            body: EventBody::DecisionSkip(DecisionSkip::new(
                &alert,
                reason,
                "restart-crm-api acted on this alert recently".into(),
            )),
        }
    }

    fn not_remediating(due: &[Value]) -> Vec<&Value> {
        due.iter()
            .filter(|a| a["labels"]["alertname"] == "AutohealNotRemediating")
            .collect()
    }

    #[test]
    fn an_alert_declined_for_long_enough_reaches_people_until_it_resolves() {
        let notifier = Notifier::new(
            Duration::from_secs(300),
            Duration::from_secs(300),
            "http://autoheal/console".into(),
        );
        notifier.observe(&skip(1000.0, SkipReason::Cooldown, "firing"));
        // Declined, but not yet for `not_remediating_after`.
        assert!(not_remediating(&notifier.take_due(true, 1100.0)).is_empty());
        assert_eq!(notifier.next_decline_due(), Some(1300.0));
        notifier.raise_not_remediating(1300.0);
        let due = notifier.take_due(false, 1300.0);
        let notice = not_remediating(&due);
        assert_eq!(notice.len(), 1, "{due:#?}");
        assert_eq!(notice[0]["labels"]["autoheal_alertname"], "CrmDown");
        assert_eq!(notice[0]["labels"]["fingerprint"], "f1");
        let summary = notice[0]["annotations"]["summary"].as_str().unwrap();
        assert!(
            summary.contains("CrmDown has fired for 5m since autoheal declined")
                && summary.contains("(cooldown)"),
            "{summary}"
        );
        // The loop's sweep seconds later changes nothing: nothing to post.
        notifier.raise_not_remediating(1305.0);
        assert!(notifier.take_due(false, 1305.0).is_empty());
        // Alertmanager sends it again, declined again: still one notice.
        notifier.observe(&skip(1600.0, SkipReason::Cooldown, "firing"));
        assert_eq!(not_remediating(&notifier.take_due(true, 1600.0)).len(), 1);
        // It resolves: the notice ends (posted once more, with endsAt now).
        notifier.observe(&skip(1700.0, SkipReason::Resolved, "resolved"));
        let due = notifier.take_due(false, 1700.0);
        assert_eq!(not_remediating(&due).len(), 1, "{due:#?}");
        assert!(notifier.take_due(true, 1701.0).is_empty());
        assert_eq!(notifier.next_decline_due(), None);
    }

    #[test]
    fn skips_that_are_not_declines_never_raise_it() {
        let notifier = Notifier::new(
            Duration::from_secs(300),
            Duration::from_secs(300),
            "http://autoheal/console".into(),
        );
        notifier.observe(&skip(1000.0, SkipReason::NotAnnotated, "firing"));
        notifier.observe(&skip(1000.0, SkipReason::Claimed, "firing"));
        notifier.raise_not_remediating(5000.0);
        assert!(notifier.take_due(true, 5000.0).is_empty());
        // A decline that is never repeated stops counting as firing.
        notifier.observe(&skip(6000.0, SkipReason::Overloaded, "firing"));
        notifier.raise_not_remediating(6000.0 + 16.0 * 60.0);
        assert!(notifier.take_due(true, 6000.0 + 16.0 * 60.0).is_empty());
    }

    #[test]
    fn a_plugin_that_keeps_skipping_a_firing_alert_raises_it_and_a_fix_ends_it() {
        use autoheal_core::event::ActionFinished;
        let notifier = Notifier::new(
            Duration::from_secs(300),
            Duration::from_secs(300),
            "http://autoheal/console".into(),
        );
        let finished = |ts: f64, skipped: bool| {
            let mut finished: ActionFinished = serde_json::from_value(json!({
                "alertname": "CrmDown", "calls": [], "dry_run": false, "duration_ms": 1.0,
                "fingerprint": "f1", "logs": [], "output": "crm-api started 39s ago (min_uptime_sec = 60)",
                "plugin": "restart-unhealthy", "plugin_version": "1", "status": "firing", "targets": []
            }))
            .unwrap();
            if !skipped {
                finished.output = Some("restarted crm-api".into());
            }
            Event {
                id: 1,
                ts,
                replica: None,
                body: if skipped {
                    EventBody::ActionSkipped(finished)
                } else {
                    EventBody::ActionOk(finished)
                },
            }
        };
        notifier.observe(&finished(1000.0, true));
        notifier.observe(&finished(1200.0, true));
        notifier.raise_not_remediating(1300.0);
        let due = notifier.take_due(false, 1300.0);
        let notice = not_remediating(&due);
        assert_eq!(notice.len(), 1, "{due:#?}");
        let summary = notice[0]["annotations"]["summary"].as_str().unwrap();
        assert!(
            summary.contains("(plugin_skipped): restart-unhealthy: crm-api started 39s ago"),
            "{summary}"
        );
        // The next action restarts it: the notice ends.
        notifier.observe(&finished(1400.0, false));
        assert_eq!(not_remediating(&notifier.take_due(false, 1400.0)).len(), 1);
        assert!(notifier.take_due(true, 1401.0).is_empty());
    }

    #[test]
    fn a_dry_run_chain_that_did_not_help_pages_nobody_and_a_real_one_does() {
        let notifier = Notifier::new(
            Duration::from_secs(300),
            Duration::from_secs(300),
            "http://autoheal/console".into(),
        );
        let ineffective = |id: u64, dry_run: bool| -> Event {
            serde_json::from_value(json!({
                "id": id, "ts": 1000.0, "kind": "remediation_ineffective",
                "alertname": "CrmDown", "fingerprint": "f1", "plugin": "restart-crm-api",
                "step": 1, "within_sec": 60.0, "dry_run": dry_run,
                "detail": "CrmDown was still firing 60 s after restart-crm-api's action"
            }))
            .unwrap()
        };
        notifier.observe(&ineffective(1, true));
        let failed: Event = serde_json::from_value(json!({
            "id": 3, "ts": 1000.0, "kind": "action_fail",
            "alertname": "CrmDown", "fingerprint": "f1", "status": "firing",
            "plugin": "restart-crm-api", "plugin_version": "1", "dry_run": true,
            "duration_ms": 3.0, "reason": "plugin_error", "error": "no such container",
            "logs": [], "targets": [], "calls": []
        }))
        .unwrap();
        notifier.observe(&failed);
        assert!(
            notifier.take_due(true, 1001.0).is_empty(),
            "a dry-run is never paged"
        );
        notifier.observe(&ineffective(2, false));
        let due = notifier.take_due(false, 1002.0);
        assert_eq!(due.len(), 1, "{due:#?}");
        assert_eq!(due[0]["labels"]["alertname"], "AutohealRemediationIneffective");
        assert_eq!(due[0]["labels"]["mode"], "real");
    }
}
