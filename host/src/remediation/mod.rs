//! Remediation: for each alert of a webhook, decide, record the decision,
//! and run the chosen plugins in the background; then follow each action
//! through its approval or its verification.
//!
//! The parts, each with the state it owns:
//! - [`decide`](decide()) (`decide.rs`): pure, alert + plugins + cooldowns → verdicts;
//! - `admit.rs` (`Admitter`): the cooldowns, the pending
//!   actions and the budgets, and how a verdict is admitted against them;
//! - `queue.rs` (`ActionQueue`): the actions admitted and not done, and the
//!   places they run in: past a plugin's `max_concurrent` (or the budget in
//!   flight) an action waits for its turn instead of being dropped;
//! - `holds.rs` (`Holds`): the alerts held by their plugin's grace
//!   (`[match] firing_for`, its arithmetic in `grace.rs`) until they come due;
//! - `plan.rs`: a verdict's answer, event and pending action;
//! - `claims.rs`: in a cluster, the claims of admitted actions;
//! - `pauses.rs` (`Pauses`): operators' pauses, which turn the actions
//!   they cover into `paused` skips before admission; `shared_pauses.rs`
//!   follows them across replicas;
//! - `approval_flow.rs` (`ApprovalFlow`): the
//!   actions waiting for an operator, and how each approval ends;
//! - `verify_flow.rs` (`VerifyFlow`): the actions
//!   whose effect is awaited, and the verdict on each;
//! - [`Remediator`], this file: the coordinator that ties them together — it
//!   records, starts actions, and hands a granted approval or an
//!   ineffective step back to admission.

mod admit;
mod approval_flow;
pub mod approval_policy;
mod approvals;
mod budget;
mod claims;
mod compiling;
mod cooldown;
mod decide;
mod grace;
mod holds;
mod pauses;
mod plan;
mod preview;
mod queue;
mod remember;
mod repeat_cap;
mod shared_approvals;
mod shared_pauses;
mod stale;
mod unreachable;
mod verify;
mod verify_flow;

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use approval_flow::ApprovalError;

/// What an approver's answer did.
#[derive(Debug)]
pub enum ApprovalDecided {
    /// Enough grants: the action was dispatched, as this decision says.
    Granted(AlertDecision),
    /// Denied: nothing runs.
    Denied,
    /// The grant was recorded; it waits for more.
    Recorded {
        /// Grants so far.
        approvals: u32,
        /// Grants needed.
        required: u32,
    },
}
pub use approvals::{Approvals, NotPending, PendingApproval, new_approval_id};
/// One alert's decision (the API's type: `POST /alert` answers with it).
pub use autoheal_api::alert::{AlertDecision, Decision};
pub use budget::{BudgetReport, BudgetTicket, Budgets, Exhausted};
pub use cooldown::{ActiveCooldown, Cooldowns};
pub use decide::{
    ACTION_ANNOTATION, APPROVAL_ANNOTATION, OPT_IN_ANNOTATION, SkipReason, Verdict, approval_cause,
    cooldown_key, decide,
};
pub use holds::{Hold, Holds, MAX_HOLDS};
pub use pauses::{MAX_ACTIVE_PAUSES, PauseError};
pub use queue::{ActionQueue, NotEntered, Turn, TurnEnded};
pub use remember::{Horizons, Remembered};
pub use stale::Stale;
pub use verify::{Watch, Watches};

use autoheal_api::pauses::{Pause, PauseRequest};
use autoheal_core::alert::Alert;
use autoheal_core::audit::{AuditError, AuditLog};
use autoheal_core::event::{
    ActedBy, ActionDropped, ActionQueued, ActionStarted, Actor, DecisionSkip, DeferredDue, EventBody,
    EventKind, Retry, RetryReason, SkipReason as Skip,
};
use autoheal_core::mode::{DryRunReason, ExecutionMode};
use autoheal_core::util::unix_now;

use crate::auth::Principal;
use crate::cluster::{Cluster, FoundAnswer};
use crate::config::Config;
use crate::switches::Switches;
use admit::Places;
use admit::{Admitter, Origin, Purpose};
use approval_flow::{Answered, ApprovalFlow, Asked, Granted};
use autoheal_sandbox::PluginRuntime;
use autoheal_sandbox::capability::HostServices;
use autoheal_sandbox::registry::{Plugin, PluginSet};
use decide::{act, act_unless_cooling_down};
use pauses::{NewPause, Pauses};
use plan::{Dispatched, PendingAction, Plan, plan_one};
use queue::{Running, Waiting};
use repeat_cap::RepeatTicket;
use verify_flow::VerifyFlow;

/// The retries a decision serves, by plugin and fingerprint.
type Retries = std::collections::HashMap<(String, String), Retry>;

/// Why a pause or a resume was not made.
#[derive(Debug, thiserror::Error)]
pub enum PauseCommandError {
    /// The request itself.
    #[error(transparent)]
    Pause(#[from] PauseError),
    /// The trail could not record it: nothing changed.
    #[error("the audit trail cannot record it: {0}")]
    Audit(#[from] AuditError),
}

/// The verdicts of `plugin` alone, for an alert it held: the other plugins
/// were decided when the alert arrived. A verdict on the whole alert (not
/// annotated any more, no plugin) stands; none at all (another plugin is
/// named by the alert now) is a `no_plugin` skip naming `plugin`, so that
/// every hold ends with a decision.
fn only_for(verdicts: Vec<Verdict>, plugin: &str) -> Vec<Verdict> {
    let kept: Vec<Verdict> = verdicts
        .into_iter()
        .filter(|verdict| match verdict {
            Verdict::Act { plugin: p, .. } => p.manifest.name == plugin,
            Verdict::Skip { plugin: p, .. } => p.as_deref().is_none_or(|p| p == plugin),
            Verdict::Defer(hold) => hold.plugin == plugin,
        })
        .collect();
    if !kept.is_empty() {
        return kept;
    }
    vec![Verdict::skip_by(
        SkipReason::NoPlugin,
        plugin,
        format!("{plugin} held this alert, and no longer handles it"),
    )]
}

/// How often Alertmanager is asked which watched alerts still fire.
const POLL_EVERY: f64 = 2.0;

/// Ties remediation together: decides on each alert, records, dispatches
/// the chosen plugins, and moves actions between approval, run and verify.
pub struct Remediator {
    config: Arc<Config>,
    switches: Arc<Switches>,
    audit: Arc<AuditLog>,
    runtime: Arc<PluginRuntime>,
    services: HostServices,
    plugins: RwLock<Arc<PluginSet>>,
    /// The plugins compiling now: an alert for a new one is kept for it.
    compiles: Arc<crate::compiling::CompileBoard>,
    admitter: Admitter,
    approvals: ApprovalFlow,
    verify: VerifyFlow,
    pauses: Pauses,
    holds: Holds,
    /// The actions in flight, and the background work they leave.
    tasks: TaskTracker,
    /// The replicas' etcd, when this host is one of a cluster.
    cluster: Option<Arc<Cluster>>,
    /// The actions queued when the host last stopped, until they are
    /// decided afresh (once the plugins are loaded).
    queued_at_stop: std::sync::Mutex<Vec<ActionQueued>>,
}

impl Remediator {
    /// A remediator on these parts; the plugin set and what it remembers are the starting state.
    #[allow(clippy::too_many_arguments)] // the parts of a host, each needed
    pub fn new(
        config: Arc<Config>,
        switches: Arc<Switches>,
        audit: Arc<AuditLog>,
        runtime: Arc<PluginRuntime>,
        services: HostServices,
        plugins: PluginSet,
        compiles: Arc<crate::compiling::CompileBoard>,
        remembered: Remembered,
        cluster: Option<Arc<Cluster>>,
    ) -> Self {
        let Remembered {
            cooldowns,
            budgets,
            repeat_caps,
            approvals,
            watches,
            queued,
            pauses,
            holds,
        } = remembered;
        Self {
            admitter: Admitter::new(cooldowns, budgets, repeat_caps, config.max_pending_actions),
            approvals: ApprovalFlow::new(approvals, audit.clone(), services.containers.clone()),
            verify: VerifyFlow::new(watches, audit.clone()),
            pauses: Pauses::new(pauses),
            holds: Holds::new(holds),
            config,
            switches,
            audit,
            runtime,
            services,
            plugins: RwLock::new(Arc::new(plugins)),
            compiles,
            tasks: TaskTracker::new(),
            cluster,
            queued_at_stop: std::sync::Mutex::new(queued),
        }
    }

    /// The actions waiting for an operator, oldest first.
    pub fn pending_approvals(&self) -> Vec<PendingApproval> {
        self.approvals.pending()
    }

    /// The actions whose effect is awaited, nearest deadline first.
    pub fn verifying(&self) -> Vec<Watch> {
        self.verify.all()
    }

    /// The alerts held by their plugin's grace, soonest due first.
    pub fn held(&self) -> Vec<Hold> {
        self.holds.all()
    }

    /// How many alerts are held by their plugin's grace.
    pub fn held_count(&self) -> usize {
        self.holds.len()
    }

    /// Where plugins' state is kept (the trial of `POST /plugins/{name}/test`
    /// starts from a copy of it).
    pub fn state_store(&self) -> Arc<dyn autoheal_sandbox::capability::StateStore> {
        self.services.state.clone()
    }

    /// The loaded plugins.
    pub fn plugins(&self) -> Arc<PluginSet> {
        self.plugins.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the plugin set; invocations already running keep theirs.
    pub fn set_plugins(&self, plugins: PluginSet) {
        *self.plugins.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(plugins);
    }

    /// The blast-radius budgets and what is spent of them now.
    pub fn budget_report(&self) -> BudgetReport {
        self.admitter.budget_report(unix_now())
    }

    /// The cooldowns running now.
    pub fn active_cooldowns(&self) -> Vec<ActiveCooldown> {
        self.admitter.active_cooldowns(unix_now())
    }

    /// A webhook: decides on every alert; `received` and the decisions are
    /// committed together, in one write, before any action starts (in a
    /// cluster, after the claims of the actions are settled). If they
    /// cannot be committed, nothing starts and the cooldowns and claims
    /// begun for them are taken back, so that Alertmanager's retry is
    /// decided afresh. Returns once recorded: action results arrive later
    /// as events.
    pub async fn process_webhook(
        self: &Arc<Self>,
        received: EventBody,
        alerts: Vec<Alert>,
    ) -> Result<Vec<AlertDecision>, AuditError> {
        self.process_webhook_from(received, alerts, None).await
    }

    /// As [`Remediator::process_webhook`], for a webhook `requested_by` a
    /// verified principal: the approvals it asks for name them, and they
    /// alone cannot approve them.
    pub async fn process_webhook_from(
        self: &Arc<Self>,
        received: EventBody,
        alerts: Vec<Alert>,
        requested_by: Option<Actor>,
    ) -> Result<Vec<AlertDecision>, AuditError> {
        let alerts = alerts.into_iter().map(|alert| (alert, None)).collect();
        let retries = Retries::new();
        self.decide_and_record_from(vec![received], alerts, &retries, requested_by)
            .await
    }

    /// Held alerts come due: each is decided afresh for the plugin that
    /// held it, as if it had arrived in a webhook now — every gate applies
    /// (kill switch, pauses, cooldowns, budgets, claims, approvals) but that
    /// plugin's grace, which is served. `why` (e.g. `deferred_due`) is
    /// committed with the decisions, as `webhook_received` is with a
    /// webhook's; its `decisions` is filled in. The other plugins that
    /// match the alert were decided when it arrived and are not asked again.
    /// A hold kept after a refusal that is refused again is kept again,
    /// counted from its first refusal.
    pub async fn decide_held(
        self: &Arc<Self>,
        why: EventBody,
        held: &[Hold],
    ) -> Result<Vec<AlertDecision>, AuditError> {
        let alerts = held
            .iter()
            .map(|hold| ((*hold.alert).clone(), Some(hold.plugin.clone())))
            .collect();
        let earlier: Retries = held
            .iter()
            .filter_map(|hold| Some(((hold.plugin.clone(), hold.alert.fingerprint.clone()), hold.retry?)))
            .collect();
        self.decide_and_record(vec![why], alerts, &earlier).await
    }

    /// At start: the actions that were queued when the host stopped and
    /// never ran are recorded as `action_dropped`, and their alerts decided
    /// afresh, as if Alertmanager had sent them again (every gate applies).
    pub async fn requeue_after_restart(self: &Arc<Self>) -> Result<(), AuditError> {
        let queued = std::mem::take(&mut *self.queued_at_stop.lock().unwrap_or_else(|p| p.into_inner()));
        if queued.is_empty() {
            return Ok(());
        }
        tracing::info!(
            actions = queued.len(),
            "actions queued before the restart are decided afresh"
        );
        let mut dropped = Vec::with_capacity(queued.len());
        let mut alerts: Vec<(Alert, Option<String>)> = Vec::new();
        for action in queued {
            dropped.push(EventBody::ActionDropped(ActionDropped {
                alertname: action.alertname,
                cooldown_key: action.cooldown_key,
                detail: format!(
                    "{} was queued when the host stopped and had not run; its alert is decided afresh",
                    action.plugin
                ),
                fingerprint: action.fingerprint,
                plugin: action.plugin,
                queued_at: action.cooldown_until - action.cooldown_sec as f64,
            }));
            if !alerts
                .iter()
                .any(|(a, _)| a.fingerprint == action.alert.fingerprint)
            {
                alerts.push((action.alert, None));
            }
        }
        self.decide_and_record(dropped, alerts, &Retries::new())
            .await
            .map(drop)
    }

    /// Decides `alerts` (each for one plugin whose grace it served, or for
    /// every plugin) and commits `lead` (what brought them: a webhook, held
    /// alerts come due, queued actions dropped at a restart) with the
    /// decisions in one durable write, then starts the actions; if they
    /// cannot be committed, nothing starts and the cooldowns, holds and
    /// claims begun for them are taken back. An action refused for a
    /// passing reason (no cluster to ask, a full queue) keeps its alert to
    /// be decided again once that clears (`alert_deferred` with `retry`):
    /// `earlier` are the retries these decisions serve, by plugin and
    /// fingerprint.
    async fn decide_and_record(
        self: &Arc<Self>,
        lead: Vec<EventBody>,
        alerts: Vec<(Alert, Option<String>)>,
        earlier: &Retries,
    ) -> Result<Vec<AlertDecision>, AuditError> {
        self.decide_and_record_from(lead, alerts, earlier, None).await
    }

    /// As `decide_and_record`, naming who sent the alerts (see
    /// `PendingAction::requested_by`).
    async fn decide_and_record_from(
        self: &Arc<Self>,
        lead: Vec<EventBody>,
        alerts: Vec<(Alert, Option<String>)>,
        earlier: &Retries,
        requested_by: Option<Actor>,
    ) -> Result<Vec<AlertDecision>, AuditError> {
        let mut plan = self.plan(alerts);
        let mut settled = claims::settle_plan(self.cluster.as_ref(), &self.admitter, &mut plan).await;
        for action in &mut settled.actions {
            let key = (
                action.plugin.manifest.name.clone(),
                action.alert.fingerprint.clone(),
            );
            action.retry = earlier.get(&key).copied();
            action.requested_by = requested_by.clone();
        }
        let now = unix_now();
        for refused in std::mem::take(&mut plan.refused)
            .into_iter()
            .chain(settled.unavailable)
        {
            let key = (refused.plugin.clone(), refused.alert.fingerprint.clone());
            if let Some(kept) = self.holds.keep_for_retry(
                &refused.alert,
                &refused.plugin,
                refused.reason,
                earlier.get(&key).copied(),
                now,
                &mut plan.hold_keys,
            ) {
                plan.events.push(kept.event());
            }
        }
        let mut events = lead;
        match events.first_mut() {
            Some(EventBody::WebhookReceived(webhook)) => webhook.decisions = Some(plan.events.len()),
            Some(EventBody::DeferredDue(due)) => due.decisions = Some(plan.events.len()),
            _ => {}
        }
        events.extend(plan.events);
        match self.audit.emit_all_durable(events).await {
            Ok(_) => {
                self.start(settled.actions);
                Ok(plan.decisions)
            }
            Err(e) => {
                self.holds.forget(&plan.hold_keys);
                self.take_back(&plan.cooldown_keys, settled.won);
                self.uncount(settled.actions);
                Err(e)
            }
        }
    }

    /// Decides, starts cooldowns (under one lock, so that two copies of an
    /// alert in flight at once cannot both act), holds young alerts and
    /// admits actions; records and starts nothing. An alert that comes with
    /// a plugin's name was held by it: only that plugin's verdict counts.
    fn plan(&self, alerts: Vec<(Alert, Option<String>)>) -> Plan {
        let plugins = self.plugins();
        // One mode for the whole webhook, read once.
        let switched = self.switches.mode();
        // The plugins compiling now, read once for the whole webhook.
        let board = self.compiles.list();
        let mut plan = Plan::default();
        for (mut alert, served) in alerts {
            alert.ensure_fingerprint();
            let alert = Arc::new(alert);
            if !alert.is_firing() {
                let now = unix_now();
                plan.events
                    .extend(self.approvals.cancel_for_alert(&alert.fingerprint));
                plan.events.extend(self.verify.resolved(&alert.fingerprint, now));
                plan.events.extend(self.leave_queue_resolved(&alert));
                plan.events.extend(self.holds.resolved(&alert));
            }
            let verdicts = {
                let mut cooldowns = self.admitter.cooldowns();
                let now = unix_now();
                let mut verdicts = decide(&alert, &plugins, &cooldowns, &self.config, now);
                if let Some(plugin) = &served {
                    verdicts = only_for(verdicts, plugin);
                }
                // A new plugin still compiling would handle it: kept for it,
                // not skipped as if there were none.
                let waiting = compiling::waiting_for(&alert, &plugins, &board, served.as_deref());
                verdicts.retain(|verdict| !compiling::superseded_by(verdict, &waiting));
                let mut admitted: Vec<admit::Admitted> = waiting
                    .iter()
                    .map(|c| {
                        let skip = compiling::compiling_skip(c);
                        admit::Admitted::refused_for_now(skip, switched, RetryReason::PluginCompiling)
                    })
                    .collect();
                for verdict in verdicts {
                    let verdict =
                        self.holds
                            .unless_young(verdict, &alert, served.as_deref(), now, &mut plan.hold_keys);
                    let verdict = self.pauses.unless_paused(verdict, &alert, now);
                    let verdict = self.approvals.unless_awaiting(verdict);
                    admitted.push(self.admitter.admit(
                        verdict,
                        &alert,
                        &Origin::Decided,
                        now,
                        switched,
                        &self.approvals,
                        &mut cooldowns,
                        &mut plan.cooldown_keys,
                    ));
                }
                admitted
            };
            for admitted in verdicts {
                plan.push(&alert, admitted);
            }
        }
        plan
    }

    /// What a plan (or dispatch) that could not be recorded began is taken
    /// back: its cooldowns, and the claims it won, so that the retry is
    /// decided afresh.
    fn take_back(&self, cooldown_keys: &[String], won: Vec<String>) {
        self.admitter.forget_cooldowns(cooldown_keys);
        claims::give_back(self.cluster.as_ref(), won);
    }

    /// An action counted toward its plugin's repeat caps that did not run
    /// for real after all is taken out of them (on replicas, of etcd's too).
    fn uncount_ticket(&self, repeat: Option<RepeatTicket>, cooldown_key: &str) {
        let Some(ticket) = repeat else {
            return;
        };
        let at = ticket.at;
        ticket.refund();
        if let Some(cluster) = &self.cluster {
            claims::uncount_in_background(cluster, cooldown_key, at);
        }
    }

    /// Actions that will not start after all (their decision could not be
    /// recorded) leave the repeat caps' counts, here and in the cluster, so
    /// that the retry is not refused for actions that never happened.
    fn uncount(&self, actions: impl IntoIterator<Item = PendingAction>) {
        for mut action in actions {
            if let (Some(at), Some(cluster)) = (action.places.uncount_repeat(), &self.cluster) {
                claims::uncount_in_background(cluster, &action.cooldown_key, at);
            }
        }
    }

    /// Spawns the admitted actions.
    fn start(self: &Arc<Self>, actions: Vec<PendingAction>) {
        for pending in actions {
            let remediator = self.clone();
            let perform = self.tasks.track_future(remediator.perform(pending));
            self.runtime.spawn_action(perform);
        }
    }

    /// Runs an admitted action and records what it did; then, for a preview,
    /// asks for the approval, and for a step of a chain, watches its effect.
    async fn perform(self: Arc<Self>, pending: PendingAction) {
        let PendingAction {
            plugin,
            alert,
            cooldown_key,
            mut mode,
            mut dry_run_reason,
            places,
            purpose,
            start,
            retry,
            requested_by,
        } = pending;
        let Places {
            place: _place,
            turn,
            mut repeat,
        } = places;
        let mut running = match turn {
            Turn::Now(running) => running,
            Turn::Queued(waiting) => {
                let turn = self
                    .wait_for_turn(waiting, start, &plugin, &alert, &cooldown_key, &mut repeat)
                    .await;
                match turn {
                    Some((running, turned, reason)) => {
                        (mode, dry_run_reason) = (turned, reason);
                        running
                    }
                    None => return,
                }
            }
        };
        let started_at = unix_now();
        let mut events = crate::action_events::invoke_to_events(
            &self.runtime,
            self.services.clone(),
            &plugin,
            &alert,
            mode,
            self.config.chaos_failure_rate,
        )
        .await;
        if let Some(EventBody::ActionSkipped(skipped)) = events.last_mut() {
            // Before the skip is recorded, so that an alert re-sent as soon
            // as it is seen is decided afresh.
            running.refund_budget();
            let uncounted = repeat.take().map(|ticket| {
                let at = ticket.at;
                ticket.refund();
                at
            });
            let until = self.after_skip(&plugin, &cooldown_key, uncounted);
            skipped.cooldown_key = Some(cooldown_key.clone());
            skipped.cooldown_until = Some(until);
        }
        let kept = match events.last() {
            Some(EventBody::ActionFail(failed)) if mode == ExecutionMode::Real => {
                self.keep_if_engine_unreachable(&plugin, &alert, &cooldown_key, &failed.calls, retry)
                    .await
            }
            _ => None,
        };
        events.extend(kept.as_ref().map(Hold::event));
        let outcome = events.last().map(EventBody::kind);
        let preview = match (&purpose, events.last()) {
            (Purpose::Preview { .. }, Some(EventBody::ActionDryRun(done))) => {
                Some((done.calls.clone(), done.output.clone()))
            }
            _ => None,
        };
        self.audit.emit_all(events);
        // The places (to run, pending, budget) are freed when the action is
        // done: the next action queued for them takes its turn.
        drop(running);
        match purpose {
            Purpose::Preview {
                cause,
                cooldown_key,
                chain,
            } => {
                if let Some((calls, summary)) = preview {
                    let asked = Asked {
                        cause,
                        cooldown_key,
                        chain,
                        calls,
                        summary,
                        requested_by,
                    };
                    self.approvals.request(&plugin, &alert, asked).await;
                }
            }
            // A skip changed nothing: there is no effect to verify (a
            // recovery after it is not its doing) and no failure to
            // escalate; the chain starts again at the next webhook. Nor did
            // a failure for want of the engine: its alert is kept instead.
            Purpose::Act { chain: Some(_) }
                if outcome == Some(EventKind::ActionSkipped) || kept.is_some() => {}
            Purpose::Act { chain: Some(chain) } => {
                let ran = (mode, dry_run_reason);
                let failed =
                    self.verify
                        .after_step(&plugin.manifest.name, alert, chain, outcome, ran, started_at);
                if let Some(watch) = failed {
                    self.escalate(&watch);
                }
            }
            Purpose::Act { chain: None } => {}
        }
    }

    /// A real action failed: if the engine a container call failed on does
    /// not answer now, nothing was done. Its cooldown (and claim) is given
    /// back and its alert kept to be decided again (`retry`,
    /// `engine_unreachable`); the hold, to record with the failure.
    async fn keep_if_engine_unreachable(
        &self,
        plugin: &Plugin,
        alert: &Arc<Alert>,
        cooldown_key: &str,
        calls: &[autoheal_core::invocation::CapabilityCall],
        earlier: Option<Retry>,
    ) -> Option<Hold> {
        if !unreachable::engine_unreachable(&*self.services.containers, calls).await {
            return None;
        }
        let kept = self.holds.keep_for_retry(
            alert,
            &plugin.manifest.name,
            RetryReason::EngineUnreachable,
            earlier,
            unix_now(),
            &mut Vec::new(),
        )?;
        self.give_back_cooldown(cooldown_key);
        // Nor does an effect the engine never heard of count against its
        // breaker: else an outage longer than a few retries would find the
        // breaker open when the engine is back.
        for call in calls
            .iter()
            .filter(|c| c.is_real_effect() && c.outcome == autoheal_core::invocation::CallOutcome::Failed)
        {
            if let Some(breaker) = self.services.breakers.of(call.capability) {
                breaker.give_back_failed(&call.target);
            }
        }
        tracing::warn!(
            plugin = %plugin.manifest.name,
            alert = %alert.alertname(),
            attempt = kept.retry.map_or(1, |r| r.attempt),
            "the container engine does not answer: the alert is kept and decided again"
        );
        Some(kept)
    }

    /// A queued action waits for its turn. Returns its place to run and
    /// the mode it runs in, with why in dry-run (`start`, its
    /// `action_started`, is recorded then);
    /// or `None` when it leaves the queue without running — its alert
    /// resolved, the budget's window was spent, a pause or window covers it
    /// now, or the host stops — recorded, with its cooldown, claim and
    /// repeat-cap count given back.
    async fn wait_for_turn(
        &self,
        waiting: Waiting,
        start: Option<ActionStarted>,
        plugin: &Plugin,
        alert: &Alert,
        cooldown_key: &str,
        repeat: &mut Option<RepeatTicket>,
    ) -> Option<(Running, ExecutionMode, Option<DryRunReason>)> {
        let queued_at = waiting.queued_at;
        let name = &plugin.manifest.name;
        let skip = match waiting.turn().await {
            TurnEnded::Run(mut running) => match self.paused_at_turn(name, alert) {
                None => {
                    let start = start.expect("a queued action carries its action_started");
                    let (mode, reason) = self.take_turn(start, queued_at, &mut running);
                    if mode != ExecutionMode::Real {
                        // Switched to dry-run while it waited: not counted.
                        self.uncount_ticket(repeat.take(), cooldown_key);
                    }
                    return Some((running, mode, reason));
                }
                // Dropping `running` gives its place to the next waiting.
                Some(paused) => {
                    let detail = format!(
                        "{name}'s turn in the queue came under pause {}: {}",
                        paused.id, paused.reason
                    );
                    Some(DecisionSkip {
                        pause_id: Some(paused.id),
                        pause_reason: Some(paused.reason),
                        paused_until: Some(paused.until),
                        ..DecisionSkip::new(alert, Skip::Paused, detail)
                    })
                }
            },
            TurnEnded::BudgetSpent(spent) => Some(DecisionSkip {
                budget: Some(spent.budget),
                ..DecisionSkip::new(alert, Skip::Budget, spent.detail)
            }),
            // Recorded when the resolved alert came.
            TurnEnded::Resolved => None,
            // The host stops: the next start decides it afresh.
            TurnEnded::Closed => return None,
        };
        if let Some(skip) = skip {
            let skip = DecisionSkip {
                plugin: Some(name.clone()),
                queued_at: Some(queued_at),
                ..skip
            };
            self.audit.emit_all(vec![EventBody::DecisionSkip(skip)]);
        }
        self.uncount_ticket(repeat.take(), cooldown_key);
        self.give_back_cooldown(cooldown_key);
        None
    }

    /// A queued action's turn came: its `action_started` is recorded, with
    /// how long it waited. The switches are read again: an action queued
    /// before the kill switch (or dry-run) was set runs in dry-run. Returns
    /// the mode it runs in, and why in dry-run.
    fn take_turn(
        &self,
        mut start: ActionStarted,
        queued_at: f64,
        running: &mut Running,
    ) -> (ExecutionMode, Option<DryRunReason>) {
        start.queued_sec = Some((unix_now() - queued_at).max(0.0));
        let (switched, reason) = self.switches.mode();
        if start.mode == ExecutionMode::Real && switched != ExecutionMode::Real {
            start.mode = switched;
            start.dry_run_reason = reason;
            running.release_budget();
        }
        let ran = (start.mode, start.dry_run_reason);
        self.audit.emit_all(vec![EventBody::ActionStarted(start)]);
        ran
    }

    /// The operator's pause or maintenance window that covers `plugin`'s
    /// action on `alert` now, if one does: a queued action whose turn comes
    /// during one does not run (it was decided before the pause began).
    fn paused_at_turn(&self, plugin: &str, alert: &Alert) -> Option<pauses::PausedBy> {
        let now = unix_now();
        self.pauses.covering(plugin, alert, now).or_else(|| {
            crate::maintenance::covering(&self.config.maintenance, plugin, &alert.labels, now).map(Into::into)
        })
    }

    /// The actions of a resolved `alert` waiting in the queue leave it,
    /// each recorded as `decision_skip` `resolved` (their cooldowns and
    /// claims are given back as their wait ends).
    fn leave_queue_resolved(&self, alert: &Alert) -> Vec<EventBody> {
        let queue = self.admitter.queue();
        queue
            .withdraw(&alert.fingerprint)
            .into_iter()
            .map(|(plugin, queued_at)| {
                let detail = format!("the alert resolved while {plugin}'s action waited in the queue");
                EventBody::DecisionSkip(DecisionSkip {
                    plugin: Some(plugin),
                    queued_at: Some(queued_at),
                    ..DecisionSkip::new(alert, Skip::Resolved, detail)
                })
            })
            .collect()
    }

    /// A queued action that does not run gives back the cooldown (and, in a
    /// cluster, the claim) it took, so that the alert is decided afresh.
    fn give_back_cooldown(&self, cooldown_key: &str) {
        self.admitter.forget_cooldowns(&[cooldown_key.to_owned()]);
        if let Some(cluster) = self.cluster.clone() {
            let key = cooldown_key.to_owned();
            self.tasks.spawn(async move { cluster.release(&key).await });
        }
    }

    /// The host stops: the actions waiting in the queue leave it without
    /// running (the trail keeps them as queued, and the next start decides
    /// their alerts afresh); the actions running are left to finish.
    pub fn close_queue(&self) {
        self.admitter.queue().close();
    }

    /// Actions waiting in the queue now.
    pub fn queued_actions(&self) -> usize {
        self.admitter.queue().queued()
    }

    /// The plugin declined to act: the cooldown its dispatch began is cut
    /// to the manifest's `cooldown_after_skip` (never lengthened), and in a
    /// cluster the claim is given back, so that the alert, re-sent while it
    /// still fires, is tried again; the action counted at `uncounted` (if
    /// a repeat cap counted it) leaves the cluster's count too. Returns
    /// when the cooldown now ends.
    fn after_skip(&self, plugin: &Plugin, cooldown_key: &str, uncounted: Option<f64>) -> f64 {
        let now = unix_now();
        let until = now + plugin.manifest.cooldown_after_skip.as_secs_f64();
        let until = self.admitter.cut_cooldown(cooldown_key, until, now);
        if let Some(cluster) = self.cluster.clone() {
            let key = cooldown_key.to_owned();
            self.tasks.spawn(async move {
                cluster.release(&key).await;
                if let Some(at) = uncounted {
                    cluster.uncount(&key, at).await;
                }
            });
        }
        until
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
        principal: &Principal,
        by_comment: Option<String>,
        comment: Option<String>,
    ) -> Result<ApprovalDecided, ApprovalError> {
        let plugins = self.plugins();
        let answered = self
            .approvals
            .answer(id, grant, principal, by_comment, comment, &plugins)
            .await?;
        match answered {
            Answered::Granted(granted) => self.run_approved(*granted).await.map(ApprovalDecided::Granted),
            Answered::Denied => Ok(ApprovalDecided::Denied),
            Answered::Recorded { approvals, required } => {
                Ok(ApprovalDecided::Recorded { approvals, required })
            }
        }
    }

    /// Runs a granted approval's action with the version of the plugin its
    /// preview ran; `approval_granted` and the dispatch are recorded together.
    async fn run_approved(self: &Arc<Self>, granted: Granted) -> Result<AlertDecision, ApprovalError> {
        let request = &granted.pending.request;
        let alert = Arc::new(request.alert.clone());
        let origin = Origin::Approved {
            chain: request.chain.clone(),
            plugin: granted.plugin.clone(),
        };
        let mut dispatched = self.dispatch(&alert, &request.plugin, origin);
        claims::settle_dispatched(self.cluster.as_ref(), &self.admitter, &mut dispatched).await;
        let events = vec![granted.event(), dispatched.event.clone()];
        if let Err(e) = self.audit.emit_all_durable(events).await {
            self.take_back(&dispatched.cooldown_keys, dispatched.won);
            self.uncount(dispatched.action);
            self.approvals.restore(granted.pending);
            return Err(e.into());
        }
        self.start(dispatched.action.into_iter().collect());
        Ok(dispatched.decision)
    }

    /// `plugin_name` acts on `alert` outside a webhook: admitted like any
    /// action (cooldown for an escalation, budgets, kill switch, dry-run).
    fn dispatch(&self, alert: &Arc<Alert>, plugin_name: &str, origin: Origin) -> Dispatched {
        let now = unix_now();
        let mut cooldowns = self.admitter.cooldowns();
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
            (_, Some(plugin)) => {
                let verdict = act_unless_cooling_down(plugin, alert, &cooldowns, &self.config, now);
                let verdict = self.pauses.unless_paused(verdict, alert, now);
                self.approvals.unless_awaiting(verdict)
            }
        };
        let mut cooldown_keys = Vec::new();
        let switched = self.switches.mode();
        let admitted = self.admitter.admit(
            verdict,
            alert,
            &origin,
            now,
            switched,
            &self.approvals,
            &mut cooldowns,
            &mut cooldown_keys,
        );
        drop(cooldowns);
        let (decision, event, action) = plan_one(alert, admitted);
        Dispatched {
            decision,
            event,
            action,
            cooldown_keys,
            won: Vec::new(),
        }
    }

    /// Runs the chain's next plugin after an ineffective step. A next step
    /// that cannot start (not loaded, cooling down, over a budget) ends the
    /// chain: it is recorded as ineffective with no next.
    fn escalate(self: &Arc<Self>, watch: &Watch) {
        let Some(next) = watch.next_plugin() else {
            return;
        };
        let chain = watch.next_step();
        let dispatched = self.dispatch(&watch.alert, next, Origin::Escalated { chain });
        if self.cluster.is_none() || dispatched.action.is_none() {
            self.record_escalation(watch, dispatched);
            return;
        }
        // Its claim is asked for off the caller's path (a tick, an action's end).
        let (remediator, watch) = (self.clone(), watch.clone());
        self.tasks.spawn(async move {
            let mut dispatched = dispatched;
            claims::settle_dispatched(remediator.cluster.as_ref(), &remediator.admitter, &mut dispatched)
                .await;
            remediator.record_escalation(&watch, dispatched);
        });
    }

    /// Records the next step of `watch`'s chain and starts it; a step that
    /// did not start (or lost its claim) ends the chain as ineffective.
    fn record_escalation(self: &Arc<Self>, watch: &Watch, dispatched: Dispatched) {
        let mut events = vec![dispatched.event];
        if dispatched.action.is_none() {
            let why = dispatched.decision.detail.as_deref().unwrap_or("skipped");
            events.push(EventBody::RemediationIneffective(watch.next_not_started(why)));
        }
        self.audit.emit_all(events);
        self.start(dispatched.action.into_iter().collect());
    }

    /// Until `shutdown` (or until the remediator is dropped): expires approvals
    /// and judges watched actions each second, asking Alertmanager every
    /// few seconds while any is watched; in a cluster, shares approvals. It
    /// holds the remediator only during a tick, so that a host dropped without
    /// a shutdown (tests) stops it.
    pub async fn run_follow_ups(
        remediator: Weak<Self>,
        client: reqwest::Client,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let (mut polled, mut unreachable) = (0.0, false);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Some(remediator) = remediator.upgrade() else {
                return;
            };
            let now = unix_now();
            remediator.approvals.expire(now);
            remediator.expire_pauses(now);
            remediator.share_approvals().await;
            remediator.share_pauses().await;
            remediator.mirror_repeat_counts().await;
            if now - polled >= POLL_EVERY && !remediator.verify.is_empty() {
                polled = now;
                let alertmanager = &remediator.config.alertmanager;
                match remediator.verify.poll_alertmanager(&client, alertmanager).await {
                    Ok(()) => unreachable = false,
                    Err(e) if !unreachable => {
                        // Once per outage: resolved webhooks still verify.
                        tracing::warn!(error = %e, "cannot ask Alertmanager whether watched alerts resolved");
                        unreachable = true;
                    }
                    Err(_) => {}
                }
            }
            remediator
                .verify
                .judge_due(unix_now(), |watch| remediator.escalate(watch));
            remediator.decide_due(&client, unix_now()).await;
        }
    }

    /// Decides afresh the alerts whose grace ends by `now`, or kept after a
    /// passing refusal that may be tried again, with a `deferred_due`
    /// naming them. A kept alert Alertmanager no longer lists has resolved
    /// meanwhile (its resolution may have been sent while this host was
    /// down): it ends with `decision_skip` `resolved`. Not recorded (a full
    /// disk), they are held again and tried at the next tick.
    async fn decide_due(self: &Arc<Self>, client: &reqwest::Client, now: f64) {
        let cluster_available = self.cluster.as_ref().is_none_or(|c| c.is_available());
        let compiling: Vec<String> = self
            .compiles
            .list()
            .into_iter()
            .map(|c| c.manifest.name)
            .collect();
        let mut due = self.holds.take_due(now, cluster_available, &|plugin| {
            compiling.iter().any(|c| c == plugin)
        });
        if due.iter().any(|hold| hold.retry.is_some()) {
            // Alertmanager not answering is no news: no resolution was seen.
            if let Ok(firing) =
                autoheal_vision::unresolved_fingerprints(client, &self.config.alertmanager).await
            {
                let resolved;
                (due, resolved) = holds::resolved_meanwhile(due, &firing);
                if !resolved.is_empty() {
                    self.audit.emit_all(resolved);
                }
            }
        }
        if due.is_empty() {
            return;
        }
        let why = EventBody::DeferredDue(DeferredDue {
            decisions: None,
            held: due.iter().map(Hold::held_alert).collect(),
        });
        if let Err(e) = self.decide_held(why, &due).await {
            tracing::error!(error = %e, held = due.len(), "held alerts came due but their decisions could not be recorded; retried in a second");
            self.holds.restore(due);
        }
    }

    /// In a cluster, brings the cluster's view of this replica's approvals
    /// up to date and applies the answers other replicas took.
    async fn share_approvals(self: &Arc<Self>) {
        // While etcd does not answer this would hold up the tick (approval
        // expiry, verify deadlines) by a timeout each second; the cluster's
        // own once-a-second read says when it is back.
        let Some(cluster) = self.cluster.clone().filter(|c| c.is_available()) else {
            return;
        };
        for (id, found) in shared_approvals::exchange(&cluster, &self.approvals).await {
            match found {
                FoundAnswer::Proven {
                    answer,
                    revision,
                    key,
                } => {
                    let principal = shared_approvals::principal_of(&answer);
                    let by_comment = shared_approvals::by_comment(&answer);
                    let result = self
                        .decide_approval(&id, answer.grant, &principal, by_comment, answer.comment.clone())
                        .await;
                    shared_approvals::answer_applied(
                        &cluster,
                        &self.audit,
                        &id,
                        (&answer, &key, revision),
                        &result,
                    )
                    .await;
                }
                FoundAnswer::Refused {
                    reason,
                    revision,
                    key,
                } => {
                    shared_approvals::refuse(&cluster, &self.audit, &id, reason, &key, revision).await;
                }
            }
        }
    }

    /// The active pauses, the soonest to end first.
    pub fn pauses(&self) -> Vec<Pause> {
        self.pauses.active(unix_now())
    }

    /// An operator's pause: checked, recorded (`pause_started`, durably)
    /// and then in force; on a replica, shared at once (or by the next
    /// tick if the cluster does not answer now).
    pub async fn pause(&self, request: PauseRequest, actor: ActedBy) -> Result<Pause, PauseCommandError> {
        let replica = self.cluster.as_ref().map(|c| c.replica().to_owned());
        let mut new = NewPause::from_request(request, new_approval_id(), replica, unix_now())?;
        // Who paused is the verified caller, never the body's text.
        new.pause.by = actor.by;
        new.pause.by_comment = actor.by_comment;
        new.pause.by_kind = actor.by_kind;
        new.pause.by_name = actor.by_name;
        if self.pauses().len() >= MAX_ACTIVE_PAUSES {
            return Err(PauseError::TooMany.into());
        }
        let event = EventBody::PauseStarted(new.event(None));
        self.audit.emit_all_durable(vec![event]).await?;
        let pause = new.pause.clone();
        self.pauses.start(new, false)?;
        if let Some(cluster) = self.cluster.as_ref().filter(|c| c.is_available()) {
            match cluster.publish_pause(&pause).await {
                Ok(()) => self.pauses.mark_shared(&pause.id),
                Err(e) => {
                    tracing::warn!(error = %e, pause = %pause.id, "pause not shared yet; the next tick tries again")
                }
            }
        }
        Ok(pause)
    }

    /// An operator's resume of pause `id`: it ends (`pause_ended`,
    /// durably); on a replica, on every replica.
    pub async fn resume(&self, id: &str, actor: ActedBy) -> Result<Pause, PauseCommandError> {
        let by = actor.by.clone();
        let (pause, ended) = self.pauses.resume(id, actor, false)?;
        if let Err(e) = self
            .audit
            .emit_all_durable(vec![EventBody::PauseEnded(ended)])
            .await
        {
            self.pauses.restore(pause);
            return Err(e.into());
        }
        if let Some(cluster) = self.cluster.as_ref().filter(|c| c.is_available())
            && let Err(e) = cluster.resume_shared_pause(&pause, by).await
        {
            tracing::warn!(error = %e, pause = %pause.id, "resume not shared yet; the next tick tries again");
        }
        Ok(pause)
    }

    /// Ends the pauses whose time is up.
    fn expire_pauses(&self, now: f64) {
        let ended = self.pauses.expire(now);
        if !ended.is_empty() {
            self.audit
                .emit_all(ended.into_iter().map(EventBody::PauseEnded).collect());
        }
    }

    /// In a cluster, follows the other replicas' pauses and resumes, and
    /// shares this replica's.
    async fn share_pauses(&self) {
        let Some(cluster) = self.cluster.clone().filter(|c| c.is_available()) else {
            return;
        };
        shared_pauses::exchange(&cluster, &self.pauses, &self.audit).await;
    }

    /// In a cluster, and while a loaded plugin has a repeat cap, copies the
    /// actions the other replicas counted, so that a cap holds whichever
    /// replica acts. Kept as it was while etcd does not answer (a real action
    /// cannot run then anyway: no claim).
    async fn mirror_repeat_counts(&self) {
        let Some(cluster) = self.cluster.as_ref().filter(|c| c.is_available()) else {
            return;
        };
        let capped = self
            .plugins()
            .iter()
            .any(|p| !p.manifest.max_actions.is_empty() || !p.manifest.max_actions_all_keys.is_empty());
        if !capped {
            return;
        }
        if let Ok(counted) = cluster.counted_by_others().await {
            let others = counted
                .into_iter()
                .map(|c| repeat_cap::Start::new(c.plugin, c.cooldown_key, c.at))
                .collect();
            self.admitter.repeat_caps().mirror(others);
        }
    }

    /// Waits for the actions in flight and for their events to be
    /// committed to the audit trail (used at shutdown and in tests).
    pub async fn drain(&self) {
        self.tasks.close();
        self.tasks.wait().await;
        self.tasks.reopen();
        if let Err(e) = self.audit.flush().await {
            tracing::error!(error = %e, "audit trail not flushed");
        }
    }
}
