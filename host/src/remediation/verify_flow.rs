//! The verify flow: after a step of a chain (an action of a plugin with
//! `[verify] within`), its alert is watched until it resolves (a resolved
//! webhook, or Alertmanager no longer listing it: `remediation_verified`)
//! or its deadline passes while it still fires (`remediation_ineffective`).
//! A step that failed, or whose deadline passed, is handed back to the
//! caller, which escalates to the chain's next plugin.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use autoheal_core::alert::Alert;
use autoheal_core::audit::AuditLog;
use autoheal_core::event::{ChainStep, EventBody, EventKind, ResolvedVia};
use autoheal_core::mode::ExecutionMode;
use autoheal_core::util::unix_now;

use super::verify::{MAX_WATCHES, Watch, Watches};

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

    /// An action of a chain finished with `outcome`: its effect is watched;
    /// or, when it failed, it is recorded ineffective and handed back, to
    /// go to the next step at once.
    pub(super) fn after_step(
        &self,
        plugin: &str,
        alert: Arc<Alert>,
        chain: ChainStep,
        outcome: Option<EventKind>,
        mode: ExecutionMode,
        started_at: f64,
    ) -> Option<Watch> {
        let watch = Watch {
            alert,
            plugin: plugin.to_owned(),
            deadline: started_at + chain.within_sec,
            chain,
            started_at,
            dry_run: mode == ExecutionMode::DryRun,
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
