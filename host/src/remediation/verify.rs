//! Verify the fix: after an action of a plugin with `[verify] within`, the
//! alert it acted on is watched until it resolves (`remediation_verified`)
//! or its deadline passes while it still fires (`remediation_ineffective`,
//! and the chain's next plugin).
//!
//! The store only keeps the watches; the verify flow (`verify_flow.rs`) feeds it what it learns
//! (a resolved webhook, Alertmanager's list of alerts, the clock).
//!
//! Only what ran is judged ([`judged`]): a real action, or a dry-run an
//! operator chose (its outcomes are labelled dry-run and never paged). A
//! dry-run the host forced on one action (no claim in a cluster, an
//! approval's preview) changed nothing and is not watched.

use std::collections::HashMap;
use std::sync::Arc;

use autoheal_core::alert::Alert;
use autoheal_core::event::{
    ChainStep, RemediationIneffective, RemediationVerified, RemediationWatched, ResolvedVia,
};
use autoheal_core::mode::{DryRunReason, ExecutionMode};

/// Actions watched at once: past it a new action is not watched (the log
/// says so; the action itself runs and is recorded as always).
pub const MAX_WATCHES: usize = 10_000;

/// Whether an action that ran in `mode` (for `reason`, in dry-run) is
/// watched and judged: a real one is; a dry-run is only when an operator
/// chose it. A forced dry-run (`cluster_unavailable`: every replica runs
/// one for each alert while etcd has no quorum; `approval`) stands in for
/// an action that did not happen: the alert resolving, or not, says
/// nothing of it, and nothing may be escalated or paged from it.
pub fn judged(mode: ExecutionMode, reason: Option<DryRunReason>) -> bool {
    match mode {
        ExecutionMode::Real => true,
        ExecutionMode::DryRun => reason.is_some_and(DryRunReason::chosen_by_operator),
    }
}

/// Whether a `remediation_watched` read back at start is watched again:
/// by [`judged`]. A dry-run line without a reason (written before reasons
/// were) is resumed only when it was not written by a replica (`replica`):
/// a single host forces a dry-run only on a preview, which is never
/// watched, while a replica's may have been `cluster_unavailable`.
pub fn resumable(watched: &RemediationWatched, replica: bool) -> bool {
    if !watched.dry_run {
        return true;
    }
    match watched.dry_run_reason {
        Some(reason) => reason.chosen_by_operator(),
        None => !replica,
    }
}

/// One action whose effect is awaited.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The alert acted on.
    pub alert: Arc<Alert>,
    /// The plugin that acted.
    pub plugin: String,
    /// Its place in the chain.
    pub chain: ChainStep,
    /// When the action started (unix seconds).
    pub started_at: f64,
    /// When it is judged ineffective.
    pub deadline: f64,
    /// Whether the action ran in dry-run (a rehearsal).
    pub dry_run: bool,
    /// Why it did (an operator's choice: see `judged`).
    pub dry_run_reason: Option<DryRunReason>,
    /// Alertmanager has listed the alert since the watch began: only then
    /// does its absence from the list mean that it resolved (an alert
    /// posted to autoheal by hand is never in Alertmanager).
    pub seen_in_alertmanager: bool,
}

impl Watch {
    /// What the trail keeps of this watch, to resume it after a restart.
    pub fn watched(&self) -> RemediationWatched {
        RemediationWatched {
            alert: (*self.alert).clone(),
            alertname: self.alert.alertname().to_owned(),
            chain: self.chain.clone(),
            deadline: self.deadline,
            dry_run: self.dry_run,
            dry_run_reason: self.dry_run_reason,
            fingerprint: self.alert.fingerprint.clone(),
            plugin: self.plugin.clone(),
            started_at: self.started_at,
        }
    }

    /// The watch a `remediation_watched` of an earlier run began. Whether
    /// Alertmanager listed the alert is not kept: until it lists it again,
    /// its absence there is not taken for a resolution.
    pub fn resumed(watched: RemediationWatched) -> Self {
        Self {
            alert: Arc::new(watched.alert),
            plugin: watched.plugin,
            chain: watched.chain,
            started_at: watched.started_at,
            deadline: watched.deadline,
            dry_run: watched.dry_run,
            dry_run_reason: watched.dry_run_reason,
            seen_in_alertmanager: false,
        }
    }

    /// The plugin of the chain after this step, if any.
    pub fn next_plugin(&self) -> Option<&str> {
        self.chain.chain.get(self.chain.step).map(String::as_str)
    }

    /// The chain's step after this one.
    pub fn next_step(&self) -> ChainStep {
        ChainStep {
            step: self.chain.step + 1,
            ..self.chain.clone()
        }
    }

    /// `remediation_verified`, seen at `now` through `via`.
    pub fn verified(&self, now: f64, via: ResolvedVia) -> RemediationVerified {
        RemediationVerified {
            alertname: self.alert.alertname().to_owned(),
            dry_run: self.dry_run,
            fingerprint: self.alert.fingerprint.clone(),
            plugin: self.plugin.clone(),
            step: self.chain.step,
            time_to_recover_sec: ((now - self.started_at).max(0.0) * 1000.0).round() / 1000.0,
            via,
        }
    }

    /// The `remediation_ineffective` of the chain's next step, which did
    /// not start (`detail` says why): it ends the chain.
    pub fn next_not_started(&self, detail: &str) -> RemediationIneffective {
        let chain = self.next_step();
        RemediationIneffective {
            alertname: self.alert.alertname().to_owned(),
            detail: format!("step {} did not start: {detail}", chain.step),
            dry_run: self.dry_run,
            fingerprint: self.alert.fingerprint.clone(),
            next: None,
            plugin: self.next_plugin().unwrap_or_default().to_owned(),
            step: chain.step,
            within_sec: chain.within_sec,
        }
    }

    /// `remediation_ineffective`, with what happened in words.
    pub fn ineffective(&self, detail: String) -> RemediationIneffective {
        RemediationIneffective {
            alertname: self.alert.alertname().to_owned(),
            detail,
            dry_run: self.dry_run,
            fingerprint: self.alert.fingerprint.clone(),
            next: self.next_plugin().map(str::to_owned),
            plugin: self.plugin.clone(),
            step: self.chain.step,
            within_sec: self.chain.within_sec,
        }
    }
}

/// The watches, by the fingerprint of their alert.
#[derive(Default)]
pub struct Watches {
    by_alert: HashMap<String, Vec<Watch>>,
}

impl Watches {
    /// Starts watching; false (and nothing watched) when `MAX_WATCHES` are.
    pub fn add(&mut self, watch: Watch) -> bool {
        if self.len() >= MAX_WATCHES {
            return false;
        }
        self.by_alert
            .entry(watch.alert.fingerprint.clone())
            .or_default()
            .push(watch);
        true
    }

    /// The alert `fingerprint` resolved: every watch on it is verified.
    pub fn resolved(&mut self, fingerprint: &str) -> Vec<Watch> {
        self.by_alert.remove(fingerprint).unwrap_or_default()
    }

    /// Alertmanager's unresolved alerts are `unresolved`: the watches on
    /// an alert it listed before and no longer lists are taken out (it
    /// resolved); the others note whether it is listed.
    pub fn observe_unresolved(&mut self, unresolved: &std::collections::HashSet<String>) -> Vec<Watch> {
        let mut resolved = Vec::new();
        self.by_alert.retain(|fingerprint, watches| {
            let listed = unresolved.contains(fingerprint);
            if !listed && watches.iter().any(|w| w.seen_in_alertmanager) {
                resolved.append(watches);
                return false;
            }
            for watch in watches.iter_mut() {
                watch.seen_in_alertmanager |= listed;
            }
            true
        });
        resolved
    }

    /// Takes out the watches whose deadline has passed at `now`.
    pub fn take_due(&mut self, now: f64) -> Vec<Watch> {
        let mut due = Vec::new();
        self.by_alert.retain(|_, watches| {
            let (past, waiting): (Vec<Watch>, Vec<Watch>) =
                watches.drain(..).partition(|w| w.deadline <= now);
            due.extend(past);
            *watches = waiting;
            !watches.is_empty()
        });
        due.sort_by(|a, b| a.deadline.total_cmp(&b.deadline));
        due
    }

    /// How many actions are watched.
    pub fn len(&self) -> usize {
        self.by_alert.values().map(Vec::len).sum()
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.by_alert.is_empty()
    }

    /// Every watch, for the status page.
    pub fn all(&self) -> Vec<Watch> {
        let mut all: Vec<Watch> = self.by_alert.values().flatten().cloned().collect();
        all.sort_by(|a, b| a.deadline.total_cmp(&b.deadline));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_core::alert::AlertStatus;

    fn watch(fingerprint: &str, deadline: f64, step: usize) -> Watch {
        Watch {
            alert: Arc::new(Alert {
                status: AlertStatus::Firing,
                labels: [("alertname".to_owned(), "A".to_owned())].into(),
                annotations: Default::default(),
                starts_at: String::new(),
                ends_at: None,
                generator_url: String::new(),
                fingerprint: fingerprint.into(),
            }),
            plugin: "first".into(),
            chain: ChainStep {
                chain: vec!["first".into(), "second".into()],
                step,
                within_sec: 10.0,
            },
            started_at: deadline - 10.0,
            deadline,
            dry_run: false,
            dry_run_reason: None,
            seen_in_alertmanager: false,
        }
    }

    fn watched(watches: &Watches) -> Vec<String> {
        watches
            .all()
            .into_iter()
            .map(|w| w.alert.fingerprint.clone())
            .collect()
    }

    #[test]
    fn a_resolved_alert_verifies_its_watches_with_the_time_to_recover() {
        let mut watches = Watches::default();
        watches.add(watch("f1", 110.0, 1));
        watches.add(watch("f2", 120.0, 1));
        let verified = watches.resolved("f1");
        assert_eq!(verified.len(), 1);
        let event = verified[0].verified(103.5, ResolvedVia::Webhook);
        assert_eq!(event.time_to_recover_sec, 3.5);
        assert_eq!(event.step, 1);
        assert_eq!(watched(&watches), vec!["f2".to_owned()]);
    }

    #[test]
    fn only_an_alert_alertmanager_listed_resolves_by_leaving_its_list() {
        let mut watches = Watches::default();
        watches.add(watch("posted-by-hand", 110.0, 1));
        watches.add(watch("in-am", 110.0, 1));
        let listed: std::collections::HashSet<String> = ["in-am".to_owned()].into();
        assert!(watches.observe_unresolved(&listed).is_empty());
        let resolved = watches.observe_unresolved(&Default::default());
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].alert.fingerprint, "in-am");
        assert_eq!(watched(&watches), vec!["posted-by-hand".to_owned()]);
    }

    #[test]
    fn a_watch_past_its_deadline_names_the_next_step() {
        let mut watches = Watches::default();
        watches.add(watch("f1", 110.0, 1));
        watches.add(watch("f1", 130.0, 2));
        assert!(watches.take_due(109.0).is_empty());
        let due = watches.take_due(110.0);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].next_plugin(), Some("second"));
        assert_eq!(due[0].next_step().step, 2);
        assert_eq!(watches.len(), 1);
        let last = watches.take_due(200.0);
        assert_eq!(last[0].next_plugin(), None, "the end of the chain");
        assert_eq!(last[0].ineffective("still firing".into()).next, None);
        assert!(watches.is_empty());
    }

    #[test]
    fn what_ran_is_judged_and_a_forced_dry_run_is_not() {
        assert!(judged(ExecutionMode::Real, None));
        assert!(judged(ExecutionMode::DryRun, Some(DryRunReason::Disabled)));
        assert!(judged(ExecutionMode::DryRun, Some(DryRunReason::DryRun)));
        assert!(!judged(
            ExecutionMode::DryRun,
            Some(DryRunReason::ClusterUnavailable)
        ));
        assert!(!judged(ExecutionMode::DryRun, Some(DryRunReason::Approval)));
        // A dry-run without a reason (a claim turned a real action into one).
        assert!(!judged(ExecutionMode::DryRun, None));
    }

    #[test]
    fn a_restart_resumes_only_the_watches_of_what_ran() {
        let mut real = watch("f1", 110.0, 1).watched();
        assert!(resumable(&real, true));
        real.dry_run = true;
        real.dry_run_reason = Some(DryRunReason::Disabled);
        assert!(resumable(&real, true), "an operator's dry-run");
        real.dry_run_reason = Some(DryRunReason::ClusterUnavailable);
        assert!(!resumable(&real, false), "a forced dry-run");
        // A line from before reasons were recorded: only a replica's can
        // have been forced.
        real.dry_run_reason = None;
        assert!(resumable(&real, false));
        assert!(!resumable(&real, true));
        let line = serde_json::to_value(watch("f1", 110.0, 1).watched()).unwrap();
        assert!(line.get("dry_run_reason").is_none(), "absent when real: {line}");
    }
}
