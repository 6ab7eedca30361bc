//! The verify flow: after a step of a chain (an action of a plugin with
//! `[verify] within`), its alert is watched until it resolves (a resolved
//! webhook, or Alertmanager no longer listing it: `remediation_verified`)
//! or its deadline passes while it still fires (`remediation_ineffective`).
//! A step that failed, or whose deadline passed, is handed back to the
//! caller, which escalates to the chain's next plugin.
//!
//! A step whose dry-run the host forced (`cluster_unavailable`) is neither
//! watched nor judged nor escalated: nothing ran (see `verify::judged`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use autoheal_core::alert::Alert;
use autoheal_core::audit::AuditLog;
use autoheal_core::event::{ChainStep, EventBody, EventKind, ResolvedVia};
use autoheal_core::mode::{DryRunReason, ExecutionMode};
use autoheal_core::util::unix_now;

use super::verify::{MAX_WATCHES, Watch, Watches, judged};

/// The actions whose effect is awaited, and the recording of each verdict.
pub(super) struct VerifyFlow {
    watches: Mutex<Watches>,
    audit: Arc<AuditLog>,
}

impl VerifyFlow {
    /// The flow, watching again what a restart interrupted (`resumed`).
    pub(super) fn new(resumed: Vec<Watch>, audit: Arc<AuditLog>) -> Self {
        let mut watches = Watches::default();
        for watch in resumed {
            watches.add(watch);
        }
        Self {
            watches: Mutex::new(watches),
            audit,
        }
    }

    fn watches(&self) -> MutexGuard<'_, Watches> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every watch, nearest deadline first.
    pub(super) fn all(&self) -> Vec<Watch> {
        self.watches().all()
    }

    /// Whether nothing is watched.
    pub(super) fn is_empty(&self) -> bool {
        self.watches().is_empty()
    }

    /// An action of a chain finished with `outcome`, having run in `mode`
    /// (for `reason`): its effect is watched; or, when it failed, it is
    /// recorded ineffective and handed back, to go to the next step at
    /// once. A forced dry-run is neither: nothing ran, so there is nothing
    /// to judge, and nothing to escalate.
    pub(super) fn after_step(
        &self,
        plugin: &str,
        alert: Arc<Alert>,
        chain: ChainStep,
        outcome: Option<EventKind>,
        (mode, reason): (ExecutionMode, Option<DryRunReason>),
        started_at: f64,
    ) -> Option<Watch> {
        if !judged(mode, reason) {
            tracing::debug!(%plugin, alertname = alert.alertname(), reason = reason.map_or("-", DryRunReason::as_str), "a forced dry-run is not watched");
            return None;
        }
        let watch = Watch {
            alert,
            plugin: plugin.to_owned(),
            deadline: started_at + chain.within_sec,
            chain,
            started_at,
            dry_run: mode == ExecutionMode::DryRun,
            dry_run_reason: reason,
            seen_in_alertmanager: false,
        };
        if matches!(outcome, Some(EventKind::ActionOk | EventKind::ActionDryRun)) {
            let (plugin, alertname) = (watch.plugin.clone(), watch.alert.alertname().to_owned());
            let watched = watch.watched();
            if self.watches().add(watch) {
                // Kept in the trail, so that a restart resumes the watch.
                self.audit.emit(EventBody::RemediationWatched(watched));
            } else {
                tracing::warn!(%plugin, %alertname, max = MAX_WATCHES, "too many actions are being verified; this one is not watched");
            }
            return None;
        }
        let event = watch.ineffective("the action failed (see its action_fail)".into());
        self.audit.emit(EventBody::RemediationIneffective(event));
        Some(watch)
    }

    /// The alert `fingerprint` resolved (a webhook said so): the actions
    /// awaiting its recovery are verified; their events, to be recorded by
    /// the caller.
    pub(super) fn resolved(&self, fingerprint: &str, now: f64) -> Vec<EventBody> {
        self.watches()
            .resolved(fingerprint)
            .into_iter()
            .map(|w| EventBody::RemediationVerified(w.verified(now, ResolvedVia::Webhook)))
            .collect()
    }

    /// Watches past their deadline at `now` are recorded ineffective, and
    /// each goes on with its chain (`escalate`) before the next is recorded.
    pub(super) fn judge_due(&self, now: f64, mut escalate: impl FnMut(&Watch)) {
        let due = self.watches().take_due(now);
        for watch in due {
            let detail = format!(
                "{} was still firing {} s after {}'s action",
                watch.alert.alertname(),
                watch.chain.within_sec,
                watch.plugin
            );
            self.audit
                .emit(EventBody::RemediationIneffective(watch.ineffective(detail)));
            escalate(&watch);
        }
    }

    /// Asks Alertmanager (the first of `alertmanager`'s members that
    /// answers) which watched alerts still fire; those it listed before and
    /// lists no more have resolved.
    pub(super) async fn poll_alertmanager(
        &self,
        client: &reqwest::Client,
        alertmanager: &autoheal_core::failover::Members,
    ) -> Result<(), autoheal_vision::SourceError> {
        let unresolved: HashSet<String> =
            autoheal_vision::unresolved_fingerprints(client, alertmanager).await?;
        let now = unix_now();
        let resolved = self.watches().observe_unresolved(&unresolved);
        let events: Vec<EventBody> = resolved
            .into_iter()
            .map(|w| EventBody::RemediationVerified(w.verified(now, ResolvedVia::Alertmanager)))
            .collect();
        if !events.is_empty() {
            self.audit.emit_all(events);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_core::alert::AlertStatus;
    use autoheal_core::audit::FsyncPolicy;

    fn alert() -> Arc<Alert> {
        Arc::new(Alert {
            status: AlertStatus::Firing,
            labels: [("alertname".to_owned(), "CrmDown".to_owned())].into(),
            annotations: Default::default(),
            starts_at: String::new(),
            ends_at: None,
            generator_url: String::new(),
            fingerprint: "f1".into(),
        })
    }

    fn chain() -> ChainStep {
        ChainStep {
            chain: vec!["first".into(), "second".into()],
            step: 1,
            within_sec: 60.0,
        }
    }

    /// What the flow recorded, as JSON lines.
    async fn recorded(audit: &AuditLog, path: &std::path::Path) -> Vec<serde_json::Value> {
        audit.flush().await.unwrap();
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_forced_dry_run_is_neither_watched_nor_escalated_and_an_operators_is_watched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (audit, _) = AuditLog::open(&path, FsyncPolicy::EveryBatch, None).unwrap();
        let audit = Arc::new(audit);
        let flow = VerifyFlow::new(Vec::new(), audit.clone());
        let forced = (ExecutionMode::DryRun, Some(DryRunReason::ClusterUnavailable));
        for outcome in [EventKind::ActionDryRun, EventKind::ActionFail] {
            let handed_back = flow.after_step("first", alert(), chain(), Some(outcome), forced, 100.0);
            assert!(handed_back.is_none(), "nothing to escalate after {outcome:?}");
        }
        // A claim that could not be asked leaves no reason: forced too.
        let unclaimed = (ExecutionMode::DryRun, None);
        assert!(
            flow.after_step(
                "first",
                alert(),
                chain(),
                Some(EventKind::ActionFail),
                unclaimed,
                100.0
            )
            .is_none()
        );
        assert!(flow.is_empty());
        flow.judge_due(1000.0, |_| panic!("nothing is judged"));
        assert!(recorded(&audit, &path).await.is_empty());

        let chosen = (ExecutionMode::DryRun, Some(DryRunReason::DryRun));
        flow.after_step(
            "first",
            alert(),
            chain(),
            Some(EventKind::ActionDryRun),
            chosen,
            100.0,
        );
        let events = recorded(&audit, &path).await;
        assert_eq!(events.len(), 1, "{events:#?}");
        assert_eq!(events[0]["kind"], "remediation_watched");
        assert_eq!(events[0]["dry_run"], true);
        assert_eq!(events[0]["dry_run_reason"], "dry_run");
        // Judged, labelled dry-run, and escalated as the chain says.
        let mut escalated = Vec::new();
        flow.judge_due(1000.0, |watch| escalated.push(watch.plugin.clone()));
        assert_eq!(escalated, ["first"]);
        let events = recorded(&audit, &path).await;
        assert_eq!(events[1]["kind"], "remediation_ineffective");
        assert_eq!(events[1]["dry_run"], true);
        assert_eq!(events[1]["next"], "second");
    }
}
