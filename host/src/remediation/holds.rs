//! Alerts held for one plugin and decided afresh later: held back by the
//! plugin's grace (`[match] firing_for`) until they have been firing long
//! enough, or kept after their action was refused for a passing reason
//! (`retry`: the cluster could not be asked, the queue was full) until it
//! clears. One hold per plugin and fingerprint.
//!
//! The store holds no clock and records nothing: the remediator asks it
//! and writes the events (`alert_deferred` when a hold begins or a re-sent
//! copy finds it, `deferred_due` when holds come due, `decision_skip`
//! `resolved` when the alert resolves first). At start it is rebuilt from
//! those events (see `remember.rs`).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use autoheal_core::alert::{Alert, AlertStatus};
use autoheal_core::event::{
    AlertDeferred, DecisionSkip, EventBody, HeldAlert, Retry, RetryReason, SkipReason,
};

use super::decide::Verdict;
use super::grace::held_until;

/// Holds that may exist at once: past it a young alert is skipped as
/// `overloaded` (a flood of distinct alerts cannot fill memory with
/// alerts kept for later); Alertmanager sends it again.
pub const MAX_HOLDS: usize = 10_000;

/// An alert held for one plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    /// The alert as received (the first copy: a re-sent one changes nothing).
    pub alert: Arc<Alert>,
    /// The plugin that waits.
    pub plugin: String,
    /// The plugin's grace, in seconds.
    pub firing_for_sec: f64,
    /// When it is decided afresh (unix seconds); for a retry after
    /// `cluster_unavailable`, the soonest, once the cluster answers.
    pub until: f64,
    /// Kept to be tried again (not for a grace): why, and since when.
    pub retry: Option<Retry>,
}

/// The pause before an alert refused as `overloaded` (or whose engine did
/// not answer) is tried again: it doubles with each refusal, up to
/// [`MAX_BACKOFF_SEC`].
const FIRST_BACKOFF_SEC: f64 = 5.0;
const MAX_BACKOFF_SEC: f64 = 60.0;
/// The soonest an alert refused for `cluster_unavailable` is tried again:
/// then as soon as the cluster answers.
const CLUSTER_RETRY_PAUSE_SEC: f64 = 1.0;
/// The soonest an alert kept for a plugin that compiles is tried again:
/// then as soon as the compile ends.
const COMPILING_RETRY_PAUSE_SEC: f64 = 1.0;

/// When an alert refused (the `attempt`th time) for `reason` at `now` is
/// tried again, at the soonest.
fn retry_at(retry: Retry, now: f64) -> f64 {
    match retry.reason {
        RetryReason::ClusterUnavailable => now + CLUSTER_RETRY_PAUSE_SEC,
        RetryReason::Overloaded | RetryReason::EngineUnreachable => {
            let doublings = retry.attempt.saturating_sub(1).min(8) as i32;
            now + (FIRST_BACKOFF_SEC * 2f64.powi(doublings)).min(MAX_BACKOFF_SEC)
        }
        RetryReason::PluginCompiling => now + COMPILING_RETRY_PAUSE_SEC,
    }
}

impl Hold {
    /// A hold as its `alert_deferred` recorded it.
    pub fn resumed(deferred: AlertDeferred) -> Self {
        Self {
            alert: Arc::new(deferred.alert),
            plugin: deferred.plugin,
            firing_for_sec: deferred.firing_for_sec,
            until: deferred.until,
            retry: deferred.retry,
        }
    }

    /// Which alert and which plugin, as `deferred_due` names it.
    pub fn held_alert(&self) -> HeldAlert {
        HeldAlert {
            alertname: self.alert.alertname().to_owned(),
            fingerprint: self.alert.fingerprint.clone(),
            plugin: self.plugin.clone(),
        }
    }

    /// The event that records it (again, for a re-sent copy).
    pub fn event(&self) -> EventBody {
        EventBody::AlertDeferred(AlertDeferred {
            alert: (*self.alert).clone(),
            alertname: self.alert.alertname().to_owned(),
            firing_for_sec: self.firing_for_sec,
            fingerprint: self.alert.fingerprint.clone(),
            plugin: self.plugin.clone(),
            until: self.until,
            retry: self.retry,
        })
    }

    fn key(&self) -> Key {
        (self.plugin.clone(), self.alert.fingerprint.clone())
    }

    /// The `decision_skip` `resolved` that ends it; `learnt` says how the
    /// resolution was learnt, the rest why the alert was held.
    fn ended_resolved(self, learnt: &str) -> EventBody {
        let held = match self.retry {
            Some(retry) => format!("it was kept for {} after {}", self.plugin, retry.reason.as_str()),
            None => format!("{} held it (firing_for)", self.plugin),
        };
        let detail = format!("{learnt} while {held}, before it was decided");
        let mut skip = DecisionSkip {
            plugin: Some(self.plugin),
            ..DecisionSkip::new(&self.alert, SkipReason::Resolved, detail)
        };
        skip.status = AlertStatus::Resolved;
        EventBody::DecisionSkip(skip)
    }

    /// Whether it is decided afresh at `now`: its time has come and, for a
    /// retry after `cluster_unavailable`, the cluster answers again, for
    /// one after `plugin_compiling`, its plugin's compile ended (or it has
    /// been kept as long as it may: its last attempt).
    fn due(&self, now: f64, cluster_available: bool, compiling: &dyn Fn(&str) -> bool) -> bool {
        if self.until > now {
            return false;
        }
        match self.retry {
            Some(retry) if retry.reason == RetryReason::ClusterUnavailable => {
                cluster_available || now - retry.since >= Retry::KEPT_FOR_SEC
            }
            Some(retry) if retry.reason == RetryReason::PluginCompiling => {
                !compiling(&self.plugin) || now - retry.since >= Retry::KEPT_FOR_SEC
            }
            _ => true,
        }
    }
}

/// Plugin, fingerprint.
type Key = (String, String);

/// The holds, by plugin and fingerprint.
#[derive(Default)]
pub struct Holds {
    held: Mutex<BTreeMap<Key, Hold>>,
}

impl Holds {
    /// The holds remembered from the trail.
    pub fn new(remembered: Vec<Hold>) -> Self {
        let holds = Self::default();
        holds.restore(remembered);
        holds
    }

    fn held(&self) -> MutexGuard<'_, BTreeMap<Key, Hold>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `verdict` on `alert` at `now`, unless its plugin must wait: a plugin
    /// already holding this alert answers `deferred` with the earlier
    /// `until` whatever it would decide now (the re-sent copy is the same
    /// fault, and the hold decides it in time); an action of a plugin with
    /// a grace on an alert younger than it becomes a new hold. `served`
    /// names the plugin whose grace this decision ends (a held alert come
    /// due): it decides as any other. `started` gets each new hold's key
    /// (taken back if the decision is not recorded).
    pub(super) fn unless_young(
        &self,
        verdict: Verdict,
        alert: &Arc<Alert>,
        served: Option<&str>,
        now: f64,
        started: &mut Vec<(String, String)>,
    ) -> Verdict {
        let plugin = match &verdict {
            Verdict::Act { plugin, .. } => plugin.manifest.name.as_str(),
            Verdict::Skip {
                plugin: Some(plugin), ..
            } => plugin.as_str(),
            _ => return verdict,
        };
        if served == Some(plugin) {
            return verdict;
        }
        let key = (plugin.to_owned(), alert.fingerprint.clone());
        let mut held = self.held();
        if let Some(hold) = held.get(&key) {
            return Verdict::Defer(hold.clone());
        }
        let Verdict::Act { plugin, .. } = &verdict else {
            return verdict;
        };
        let Some(firing_for) = plugin.manifest.firing_for else {
            return verdict;
        };
        let Some(until) = held_until(firing_for, alert, now) else {
            return verdict;
        };
        if held.len() >= MAX_HOLDS {
            return Verdict::skip_by(
                SkipReason::Overloaded,
                &plugin.manifest.name,
                format!(
                    "{MAX_HOLDS} alerts are already held, the most that may; {} would hold this one",
                    plugin.manifest.name
                ),
            );
        }
        let hold = Hold {
            alert: alert.clone(),
            plugin: plugin.manifest.name.clone(),
            firing_for_sec: firing_for.as_secs_f64(),
            until,
            retry: None,
        };
        held.insert(key.clone(), hold.clone());
        started.push(key);
        Verdict::Defer(hold)
    }

    /// Keeps `alert` for `plugin`, whose action was refused at `now` for
    /// `reason`, to be decided again once that clears: `earlier` is the
    /// retry this decision served, if it was one. `None` when it is not
    /// kept: kept as long as it may be already, held already, or
    /// [`MAX_HOLDS`] alerts are held. A new hold's key goes to `started`
    /// (taken back if the decision is not recorded).
    pub(super) fn keep_for_retry(
        &self,
        alert: &Arc<Alert>,
        plugin: &str,
        reason: RetryReason,
        earlier: Option<Retry>,
        now: f64,
        started: &mut Vec<(String, String)>,
    ) -> Option<Hold> {
        let retry = match earlier {
            Some(earlier) => earlier.again(reason, now)?,
            None => Retry::first(reason, now),
        };
        let hold = Hold {
            alert: alert.clone(),
            plugin: plugin.to_owned(),
            firing_for_sec: 0.0,
            until: retry_at(retry, now),
            retry: Some(retry),
        };
        let mut held = self.held();
        if held.len() >= MAX_HOLDS || held.contains_key(&hold.key()) {
            return None;
        }
        held.insert(hold.key(), hold.clone());
        started.push(hold.key());
        Some(hold)
    }

    /// Takes back the holds `keys` began: their decision was not recorded.
    pub(super) fn forget(&self, keys: &[(String, String)]) {
        let mut held = self.held();
        for key in keys {
            held.remove(key);
        }
    }

    /// Takes out the holds due at `now`, soonest first; a retry after
    /// `cluster_unavailable` only if `cluster_available`, one after
    /// `plugin_compiling` only once its plugin is not `compiling`.
    pub fn take_due(&self, now: f64, cluster_available: bool, compiling: &dyn Fn(&str) -> bool) -> Vec<Hold> {
        let mut held = self.held();
        let due: Vec<Key> = held
            .iter()
            .filter(|(_, hold)| hold.due(now, cluster_available, compiling))
            .map(|(key, _)| key.clone())
            .collect();
        let mut due: Vec<Hold> = due.iter().filter_map(|key| held.remove(key)).collect();
        due.sort_by(|a, b| a.until.total_cmp(&b.until));
        due
    }

    /// Puts holds back (remembered at start, or come due and not recorded).
    pub fn restore(&self, holds: Vec<Hold>) {
        let mut held = self.held();
        for hold in holds {
            held.entry(hold.key()).or_insert(hold);
        }
    }

    /// `alert` resolved: its holds end, each with a `decision_skip`
    /// `resolved` naming the plugin that waited.
    pub fn resolved(&self, alert: &Alert) -> Vec<EventBody> {
        let mut held = self.held();
        let ended: Vec<Key> = held
            .keys()
            .filter(|(_, fingerprint)| *fingerprint == alert.fingerprint)
            .cloned()
            .collect();
        ended
            .into_iter()
            .filter_map(|key| held.remove(&key))
            .map(|hold| hold.ended_resolved("the alert resolved"))
            .collect()
    }

    /// Every hold, soonest due first.
    pub fn all(&self) -> Vec<Hold> {
        let mut all: Vec<Hold> = self.held().values().cloned().collect();
        all.sort_by(|a, b| a.until.total_cmp(&b.until));
        all
    }

    /// How many alerts are held.
    pub fn len(&self) -> usize {
        self.held().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.held().is_empty()
    }
}

/// Splits holds come due into those still to decide and, for each kept
/// alert (a retry) that Alertmanager no longer lists (`firing`: the
/// fingerprints it holds unresolved), the `decision_skip` `resolved` that
/// ends it. A grace's hold is decided as it is.
pub fn resolved_meanwhile(due: Vec<Hold>, firing: &HashSet<String>) -> (Vec<Hold>, Vec<EventBody>) {
    let (gone, still): (Vec<Hold>, Vec<Hold>) = due
        .into_iter()
        .partition(|hold| hold.retry.is_some() && !firing.contains(&hold.alert.fingerprint));
    let ended = gone
        .into_iter()
        .map(|hold| hold.ended_resolved("Alertmanager no longer lists the alert: it resolved"))
        .collect();
    (still, ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(plugin: &str, fingerprint: &str, until: f64) -> Hold {
        let mut alert: Alert =
            serde_json::from_str(r#"{"status":"firing","labels":{"alertname":"A"}}"#).unwrap();
        alert.fingerprint = fingerprint.to_owned();
        Hold {
            alert: Arc::new(alert),
            plugin: plugin.to_owned(),
            firing_for_sec: 120.0,
            until,
            retry: None,
        }
    }

    #[test]
    fn one_hold_per_plugin_and_alert_the_earlier_standing() {
        let holds = Holds::new(vec![hold("p", "f1", 10.0), hold("q", "f1", 30.0)]);
        holds.restore(vec![hold("p", "f1", 50.0), hold("p", "f2", 20.0)]);
        let all: Vec<_> = holds.all().iter().map(|h| (h.plugin.clone(), h.until)).collect();
        assert_eq!(all, [("p".into(), 10.0), ("p".into(), 20.0), ("q".into(), 30.0)]);
        assert_eq!(holds.len(), 3);
    }

    #[test]
    fn holds_come_due_soonest_first_and_leave() {
        let holds = Holds::new(vec![
            hold("p", "f2", 20.0),
            hold("p", "f1", 10.0),
            hold("p", "f3", 30.0),
        ]);
        assert!(holds.take_due(9.9, true, &|_| false).is_empty());
        let due: Vec<_> = holds
            .take_due(20.0, true, &|_| false)
            .iter()
            .map(|h| h.until)
            .collect();
        assert_eq!(due, [10.0, 20.0]);
        assert_eq!(holds.len(), 1);
        assert!(holds.take_due(20.0, true, &|_| false).is_empty(), "taken once");
    }

    #[test]
    fn a_resolved_alert_ends_its_holds_with_a_skip_naming_each_plugin() {
        let holds = Holds::new(vec![
            hold("p", "f1", 10.0),
            hold("q", "f1", 10.0),
            hold("p", "f2", 10.0),
        ]);
        let mut resolved = (*hold("p", "f1", 0.0).alert).clone();
        resolved.status = autoheal_core::alert::AlertStatus::Resolved;
        let events = holds.resolved(&resolved);
        let plugins: Vec<_> = events
            .iter()
            .map(|e| match e {
                EventBody::DecisionSkip(s) => {
                    assert_eq!((s.reason, s.fingerprint.as_str()), (SkipReason::Resolved, "f1"));
                    s.plugin.clone().unwrap()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(plugins, ["p", "q"]);
        assert_eq!(holds.len(), 1);
    }

    #[test]
    fn a_hold_is_recorded_with_its_whole_alert_and_read_back_the_same() {
        let held = hold("p", "f1", 10.0);
        let EventBody::AlertDeferred(deferred) = held.event() else {
            panic!("alert_deferred")
        };
        assert_eq!(Hold::resumed(deferred), held);
    }

    #[test]
    fn a_retry_after_cluster_unavailable_waits_for_the_cluster_and_is_kept_an_hour_at_most() {
        let holds = Holds::default();
        let alert = hold("p", "f1", 0.0).alert;
        let mut started = Vec::new();
        let first = holds
            .keep_for_retry(
                &alert,
                "p",
                RetryReason::ClusterUnavailable,
                None,
                100.0,
                &mut started,
            )
            .expect("kept");
        assert_eq!(
            first.retry,
            Some(Retry::first(RetryReason::ClusterUnavailable, 100.0))
        );
        assert_eq!(started, [("p".to_owned(), "f1".to_owned())]);
        assert!(
            holds
                .keep_for_retry(
                    &alert,
                    "p",
                    RetryReason::ClusterUnavailable,
                    None,
                    100.0,
                    &mut started
                )
                .is_none(),
            "one hold per plugin and alert"
        );
        assert!(
            holds.take_due(200.0, false, &|_| false).is_empty(),
            "the cluster still does not answer"
        );
        let due = holds.take_due(101.0, true, &|_| false);
        assert_eq!(due.len(), 1, "due as soon as the cluster answers");
        // Refused again: kept, counted; past the hour, not kept again.
        let again = holds
            .keep_for_retry(
                &alert,
                "p",
                RetryReason::ClusterUnavailable,
                due[0].retry,
                200.0,
                &mut started,
            )
            .expect("kept again");
        assert_eq!(again.retry.map(|r| (r.attempt, r.since)), Some((2, 100.0)));
        assert_eq!(
            holds.take_due(3700.0, false, &|_| false).len(),
            1,
            "its last attempt, cluster or not"
        );
        assert!(
            holds
                .keep_for_retry(
                    &alert,
                    "p",
                    RetryReason::ClusterUnavailable,
                    again.retry,
                    3700.0,
                    &mut started
                )
                .is_none()
        );
    }

    #[test]
    fn an_overloaded_alert_is_tried_again_after_a_pause_that_doubles() {
        let holds = Holds::default();
        let alert = hold("p", "f1", 0.0).alert;
        let mut started = Vec::new();
        let mut earlier = None;
        let mut pauses = Vec::new();
        for _ in 0..6 {
            let kept = holds
                .keep_for_retry(
                    &alert,
                    "p",
                    RetryReason::Overloaded,
                    earlier,
                    1000.0,
                    &mut started,
                )
                .unwrap();
            pauses.push(kept.until - 1000.0);
            earlier = holds.take_due(kept.until, false, &|_| false).pop().unwrap().retry;
        }
        assert_eq!(pauses, [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]);
    }

    #[test]
    fn a_retry_is_recorded_and_read_back_the_same() {
        let mut held = hold("p", "f1", 10.0);
        held.retry = Some(Retry::first(RetryReason::Overloaded, 3.0));
        let EventBody::AlertDeferred(deferred) = held.event() else {
            panic!("alert_deferred")
        };
        assert_eq!(Hold::resumed(deferred), held);
    }

    #[test]
    fn a_kept_alert_alertmanager_no_longer_lists_ends_resolved_and_a_grace_is_decided() {
        let mut kept = hold("p", "gone", 10.0);
        kept.retry = Some(Retry::first(RetryReason::ClusterUnavailable, 1.0));
        let mut firing_kept = hold("p", "firing", 10.0);
        firing_kept.retry = kept.retry;
        let young = hold("q", "young", 10.0);
        let firing = HashSet::from(["firing".to_owned()]);
        let (still, ended) = resolved_meanwhile(vec![kept, firing_kept, young], &firing);
        let still: Vec<&str> = still.iter().map(|h| h.alert.fingerprint.as_str()).collect();
        assert_eq!(still, ["firing", "young"]);
        match &ended[..] {
            [EventBody::DecisionSkip(skip)] => {
                assert_eq!(
                    (skip.reason, skip.fingerprint.as_str()),
                    (SkipReason::Resolved, "gone")
                );
                assert_eq!(skip.plugin.as_deref(), Some("p"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_alert_kept_for_a_compiling_plugin_comes_due_once_the_compile_ends() {
        let holds = Holds::default();
        let alert = hold("New", "f1", 0.0).alert;
        let mut started = Vec::new();
        let kept = holds
            .keep_for_retry(
                &alert,
                "New",
                RetryReason::PluginCompiling,
                None,
                100.0,
                &mut started,
            )
            .expect("kept");
        assert_eq!(kept.until, 101.0);
        assert!(
            holds.take_due(130.0, true, &|name| name == "New").is_empty(),
            "not while New compiles"
        );
        let due = holds.take_due(130.0, true, &|_| false);
        assert_eq!(due.len(), 1, "due once New's compile ended");
        assert_eq!(due[0].retry.unwrap().reason, RetryReason::PluginCompiling);
    }
}
