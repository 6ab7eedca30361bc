//! The engine's remediation policies after a decision: approvals (a preview,
//! then an operator's yes or no, or expiry, or the alert resolving first)
//! and verify-the-fix with its escalation chain. The stores are
//! `approvals.rs` and `verify.rs`; this file moves actions between them
//! and records each step as an event.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use autoheal_core::alert::Alert;
use autoheal_core::audit::AuditError;
use autoheal_core::event::{
    ApprovalCause, ApprovalEnded, ApprovalRequested, CancelReason, ChainStep, EventBody, EventKind,
    RemediationIneffective, ResolvedVia,
};
use autoheal_core::invocation::CapabilityCall;
use autoheal_core::mode::ExecutionMode;
use autoheal_core::util::unix_now;
use autoheal_sandbox::manifest::Manifest;
use autoheal_sandbox::registry::{Plugin, PluginSet};

use super::approvals::{NotPending, PendingApproval, new_approval_id};
use super::decide::{SkipReason, Verdict, act, act_unless_cooling_down, cooldown_key};
use super::stale::Stale;
use super::verify::Watch;
use super::{AlertDecision, Engine, Origin, PendingAction};

/// The annotation by which an alert asks for an operator's approval.
pub const APPROVAL_ANNOTATION: &str = "autoheal_approval";

/// How often Alertmanager is asked which watched alerts still fire.
const POLL_EVERY: f64 = 2.0;

/// Why an action must wait for an operator, if it must.
pub fn approval_cause(manifest: &Manifest, alert: &Alert) -> Option<ApprovalCause> {
    if manifest.approval_required {
        return Some(ApprovalCause::Manifest);
    }
    alert
        .annotations
        .get(APPROVAL_ANNOTATION)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("required"))
        .then_some(ApprovalCause::Annotation)
}

/// What a preview found, for its approval.
pub(super) struct Asked {
    pub(super) cause: ApprovalCause,
    pub(super) cooldown_key: String,
    pub(super) chain: Option<ChainStep>,
    pub(super) calls: Vec<CapabilityCall>,
    pub(super) summary: Option<String>,
}

/// Why an approval could not be decided.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// Not pending: unknown, or ended already.
    #[error(transparent)]
    NotPending(#[from] NotPending),
    /// Answered after its `expires_at`: it ended as `approval_expired` now.
    #[error("approval_expired: the approval expired {late_sec:.3} s before this answer; nothing ran")]
    Expired {
        /// How long after `expires_at` the answer came, in seconds.
        late_sec: f64,
    },
    /// Approved, but its plugin is no longer the version its preview ran:
    /// it ended as `approval_cancelled` (`reason: approval_stale`).
    #[error(
        "approval_stale: {0}; nothing ran and the approval is cancelled (once the cooldown its preview began runs out, the alert is decided afresh with the plugin loaded then, and a new preview)"
    )]
    Stale(Stale),
    /// The decision could not be recorded; the approval still waits.
    #[error("the decision could not be recorded, the approval still waits: {0}")]
    Audit(#[from] AuditError),
}

/// How an answered approval ends.
enum Ending {
    /// Approved; it runs this plugin, the version its preview ran.
    Granted(Arc<Plugin>),
    Denied,
    /// Answered after its `expires_at`, before the tick expired it.
    Expired,
    /// Approved, but what its preview ran is no longer loaded.
    Stale(Stale),
}

impl Ending {
    /// How `pending`, answered `grant` at `now` with `plugins` loaded, ends.
    /// Expiry comes first: a late answer, yes or no, changes nothing.
    fn of(pending: &PendingApproval, grant: bool, now: f64, plugins: &PluginSet) -> Self {
        if pending.request.expires_at <= now {
            return Self::Expired;
        }
        if !grant {
            return Self::Denied;
        }
        match super::stale::previewed(&pending.request, plugins) {
            Ok(plugin) => Self::Granted(plugin),
            Err(stale) => Self::Stale(stale),
        }
    }

    /// The kind of event that ends it.
    fn kind(&self) -> EventKind {
        match self {
            Self::Granted(_) => EventKind::ApprovalGranted,
            Self::Denied => EventKind::ApprovalDenied,
            Self::Expired => EventKind::ApprovalExpired,
            Self::Stale(_) => EventKind::ApprovalCancelled,
        }
    }
}

/// An action dispatched outside a webhook (approved, or escalated).
struct Dispatched {
    decision: AlertDecision,
    event: EventBody,
    action: Option<PendingAction>,
    cooldown_keys: Vec<String>,
    /// The claim taken for it, in a cluster.
    won: Vec<String>,
}

impl Engine {
    /// The preview ran: the action waits for an operator from now on. The
    /// request is committed durably: an approval survives a restart.
    pub(super) async fn request_approval(&self, plugin: &Plugin, alert: &Alert, asked: Asked) {
        let preview = super::preview::preview(&asked.calls, &*self.services.containers).await;
        let now = unix_now();
        let request = ApprovalRequested {
            alert: alert.clone(),
            alertname: alert.alertname().to_owned(),
            approval: new_approval_id(),
            calls: asked.calls,
            chain: asked.chain,
            cause: asked.cause,
            // The version the preview ran: approving runs that one or nothing.
            component_hash: Some(plugin.component.hash.clone()),
            cooldown_key: asked.cooldown_key,
            expires_at: now + plugin.manifest.approval_expires.as_secs_f64(),
            fingerprint: alert.fingerprint.clone(),
            manifest_hash: Some(plugin.manifest_hash.clone()),
            plugin: plugin.manifest.name.clone(),
            plugin_version: plugin.manifest.version.clone(),
            preview,
            summary: asked.summary,
        };
        let id = request.approval.clone();
        tracing::info!(approval = %id, plugin = %request.plugin, alertname = %request.alertname, "an action waits for approval");
        self.approvals().insert(request.clone(), now);
        if let Err(e) = self
            .audit
            .emit_all_durable(vec![EventBody::ApprovalRequested(request)])
            .await
        {
            // Unrecorded, it could not survive a restart: it does not wait.
            tracing::error!(approval = %id, error = %e, "approval not recorded; the action does not run");
            self.approvals().forget(&id);
        }
    }

    /// An operator's answer to approval `id`. Granted, the action runs for
    /// real under every gate (kill switch, dry-run, budgets, the sandbox),
    /// with the version of the plugin its preview ran; the answer says how
    /// it was dispatched. An approval past its `expires_at` (the tick may
    /// not have seen it yet) ends as expired, and one whose plugin is no
    /// longer the version previewed ends as cancelled (`approval_stale`):
    /// both are refused, and nothing runs.
    pub async fn decide_approval(
        self: &Arc<Self>,
        id: &str,
        grant: bool,
        by: Option<String>,
        comment: Option<String>,
    ) -> Result<Option<AlertDecision>, ApprovalError> {
        let now = unix_now();
        let plugins = self.plugins();
        let (pending, ending) = self.approvals().take_judged(id, |p| {
            let ending = Ending::of(p, grant, now, &plugins);
            (ending.kind(), ending)
        })?;
        let (event, error) = match ending {
            Ending::Granted(plugin) => return self.run_approved(pending, plugin, by, comment).await,
            Ending::Denied => {
                let denied = EventBody::ApprovalDenied(pending.ended(by, comment));
                if let Err(e) = self.audit.emit_all_durable(vec![denied]).await {
                    self.approvals().restore(pending);
                    return Err(e.into());
                }
                return Ok(None);
            }
            Ending::Expired => {
                let late_sec = now - pending.request.expires_at;
                tracing::info!(approval = %id, plugin = %pending.request.plugin, late_sec, "an answer came after the approval expired");
                let detail = format!("answered {late_sec:.3} s after it expired; nothing ran");
                let expired = EventBody::ApprovalExpired(pending.ended(by, Some(detail)));
                (expired, ApprovalError::Expired { late_sec })
            }
            Ending::Stale(stale) => {
                tracing::warn!(approval = %id, plugin = %pending.request.plugin, %stale, "an approved action is not run: its plugin is not the version previewed");
                let cancelled = EventBody::ApprovalCancelled(ApprovalEnded {
                    reason: Some(CancelReason::ApprovalStale),
                    ..pending.ended(by, Some(format!("approval_stale: {stale}; nothing ran")))
                });
                (cancelled, ApprovalError::Stale(stale))
            }
        };
        if let Err(e) = self.audit.emit_all_durable(vec![event]).await {
            self.approvals().restore(pending);
            return Err(e.into());
        }
        Err(error)
    }

    /// Runs a granted approval's action with `plugin`, the version its
    /// preview ran; `approval_granted` and the dispatch are recorded together.
    async fn run_approved(
        self: &Arc<Self>,
        pending: PendingApproval,
        plugin: Arc<Plugin>,
        by: Option<String>,
        comment: Option<String>,
    ) -> Result<Option<AlertDecision>, ApprovalError> {
        let alert = Arc::new(pending.request.alert.clone());
        let origin = Origin::Approved {
            chain: pending.request.chain.clone(),
            plugin,
        };
        let mut dispatched = self.dispatch(&alert, &pending.request.plugin, origin);
        self.settle_dispatched(&mut dispatched).await;
        let granted = EventBody::ApprovalGranted(pending.ended(by, comment));
        let events = vec![granted, dispatched.event.clone()];
        if let Err(e) = self.audit.emit_all_durable(events).await {
            self.take_back(&dispatched.cooldown_keys, dispatched.won);
            self.approvals().restore(pending);
            return Err(e.into());
        }
        self.start(dispatched.action.into_iter().collect());
        Ok(Some(dispatched.decision))
    }

    /// `plugin_name` acts on `alert` outside a webhook: admitted like any
    /// action (cooldown for an escalation, budgets, kill switch, dry-run).
    fn dispatch(&self, alert: &Arc<Alert>, plugin_name: &str, origin: Origin) -> Dispatched {
        let now = unix_now();
        let mut cooldowns = self.cooldowns.lock().unwrap_or_else(|p| p.into_inner());
        let verdict = match (&origin, self.plugins().get(plugin_name)) {
            // An approved action runs the version its preview ran (checked
            // when it was approved), inside the cooldown its preview began.
            (Origin::Approved { plugin, .. }, _) => {
                act(plugin, alert, &self.config, cooldown_key(plugin, alert))
            }
            (_, None) => Verdict::skip_by(
                SkipReason::NoPlugin,
                plugin_name,
                format!("plugin {plugin_name:?} is not loaded"),
            ),
            (_, Some(plugin)) => self.unless_awaiting_approval(act_unless_cooling_down(
                plugin,
                alert,
                &cooldowns,
                &self.config,
                now,
            )),
        };
        let mut cooldown_keys = Vec::new();
        let switched = self.switches.mode();
        let admitted = self.admit(
            verdict,
            alert,
            &origin,
            now,
            switched,
            &mut cooldowns,
            &mut cooldown_keys,
        );
        drop(cooldowns);
        let (decision, event, action) = self.plan_one(alert, admitted);
        Dispatched {
            decision,
            event,
            action,
            cooldown_keys,
            won: Vec::new(),
        }
    }

    /// The claim of a dispatched action (in a cluster), applied to it.
    async fn settle_dispatched(&self, dispatched: &mut Dispatched) {
        let Some(action) = dispatched.action.take() else {
            return;
        };
        let planned = super::claims::Planned {
            decision: &mut dispatched.decision,
            event: &mut dispatched.event,
            action,
        };
        let settled = self.settle_claims(vec![planned]).await;
        dispatched.action = settled.actions.into_iter().next();
        dispatched.won = settled.won;
    }

    /// An alert resolved (a webhook said so): its pending approvals are
    /// cancelled and the actions awaiting its recovery are verified.
    pub(super) fn alert_resolved(&self, fingerprint: &str, now: f64) -> Vec<EventBody> {
        let mut events: Vec<EventBody> = self
            .approvals()
            .take_for_alert(fingerprint)
            .into_iter()
            .map(|p| {
                EventBody::ApprovalCancelled(ApprovalEnded {
                    reason: Some(CancelReason::AlertResolved),
                    ..p.ended(None, Some("the alert resolved before anyone decided".into()))
                })
            })
            .collect();
        events.extend(
            self.watches()
                .resolved(fingerprint)
                .into_iter()
                .map(|w| EventBody::RemediationVerified(w.verified(now, ResolvedVia::Webhook))),
        );
        events
    }

    /// An action of a chain finished: watch its effect, or, when it failed,
    /// count it ineffective and go to the next step at once.
    pub(super) fn after_step(
        self: &Arc<Self>,
        plugin: &Plugin,
        alert: Arc<Alert>,
        chain: ChainStep,
        outcome: Option<EventKind>,
        mode: ExecutionMode,
        started_at: f64,
    ) {
        let watch = Watch {
            alert,
            plugin: plugin.manifest.name.clone(),
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
                tracing::warn!(%plugin, %alertname, max = super::verify::MAX_WATCHES, "too many actions are being verified; this one is not watched");
            }
            return;
        }
        let event = watch.ineffective("the action failed (see its action_fail)".into());
        self.audit.emit(EventBody::RemediationIneffective(event));
        self.escalate(&watch);
    }

    /// Runs the chain's next plugin after an ineffective step. A next step
    /// that cannot start (not loaded, cooling down, over a budget) ends the
    /// chain: it is recorded as ineffective with no next.
    fn escalate(self: &Arc<Self>, watch: &Watch) {
        let Some(next) = watch.next_plugin() else {
            return;
        };
        let chain = watch.next_step();
        let dispatched = self.dispatch(&watch.alert, next, Origin::Escalated { chain: chain.clone() });
        if self.cluster.is_none() || dispatched.action.is_none() {
            self.record_escalation(watch, dispatched);
            return;
        }
        // Its claim is asked for off the caller's path (a tick, an action's end).
        let (engine, watch) = (self.clone(), watch.clone());
        self.tasks.spawn(async move {
            let mut dispatched = dispatched;
            engine.settle_dispatched(&mut dispatched).await;
            engine.record_escalation(&watch, dispatched);
        });
    }

    /// Records the next step of `watch`'s chain and starts it; a step that
    /// did not start (or lost its claim) ends the chain as ineffective.
    fn record_escalation(self: &Arc<Self>, watch: &Watch, dispatched: Dispatched) {
        let chain = watch.next_step();
        let next = watch.next_plugin().unwrap_or_default().to_owned();
        let mut events = vec![dispatched.event];
        if dispatched.action.is_none() {
            events.push(EventBody::RemediationIneffective(RemediationIneffective {
                alertname: watch.alert.alertname().to_owned(),
                detail: format!(
                    "step {} did not start: {}",
                    chain.step,
                    dispatched.decision.detail.as_deref().unwrap_or("skipped")
                ),
                dry_run: watch.dry_run,
                fingerprint: watch.alert.fingerprint.clone(),
                next: None,
                plugin: next,
                step: chain.step,
                within_sec: chain.within_sec,
            }));
        }
        self.audit.emit_all(events);
        self.start(dispatched.action.into_iter().collect());
    }

    /// Approvals past their deadline expire.
    fn expire_approvals(&self, now: f64) {
        let expired = self.approvals().take_expired(now);
        if expired.is_empty() {
            return;
        }
        let events = expired
            .into_iter()
            .map(|p| {
                tracing::info!(approval = %p.request.approval, plugin = %p.request.plugin, "approval expired");
                EventBody::ApprovalExpired(p.ended(None, Some("nobody decided before it expired".into())))
            })
            .collect();
        self.audit.emit_all(events);
    }

    /// Watches past their deadline are ineffective; each chain goes on.
    fn judge_due(self: &Arc<Self>, now: f64) {
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
            self.escalate(&watch);
        }
    }

    /// Asks Alertmanager which watched alerts still fire; those it listed
    /// before and lists no more have resolved.
    async fn poll_alertmanager(&self, client: &reqwest::Client) -> Result<(), autoheal_vision::SourceError> {
        let unresolved =
            autoheal_vision::unresolved_fingerprints(client, &self.config.alertmanager_url).await?;
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

    /// Until `shutdown` (or until the engine is dropped): expires approvals
    /// and judges watched actions each second, asking Alertmanager every
    /// few seconds while any is watched. It holds the engine only during a
    /// tick, so that a host dropped without a shutdown (tests) stops it.
    pub async fn run_policies(engine: Weak<Self>, client: reqwest::Client, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let (mut polled, mut unreachable) = (0.0, false);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Some(engine) = engine.upgrade() else {
                return;
            };
            let now = unix_now();
            engine.expire_approvals(now);
            engine.share_approvals().await;
            if now - polled >= POLL_EVERY && !engine.watches().is_empty() {
                polled = now;
                match engine.poll_alertmanager(&client).await {
                    Ok(()) => unreachable = false,
                    Err(e) if !unreachable => {
                        // Once per outage: resolved webhooks still verify.
                        tracing::warn!(error = %e, "cannot ask Alertmanager whether watched alerts resolved");
                        unreachable = true;
                    }
                    Err(_) => {}
                }
            }
            engine.judge_due(unix_now());
        }
    }
}
