//! The remediation engine: for each alert of a webhook, decide, record the
//! decision, and run the chosen plugins in the background.

mod admission;
mod approvals;
mod budget;
mod claims;
mod cooldown;
mod decide;
mod policies;
mod preview;
mod remember;
mod shared_approvals;
mod stale;
mod verify;

use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio_util::task::TaskTracker;

pub use admission::{Admission, Refusal, Slot};
pub use approvals::{Approvals, NotPending, PendingApproval, new_approval_id};
pub use budget::{BudgetReport, BudgetTicket, Budgets, Exhausted};
pub use cooldown::{ActiveCooldown, Cooldowns};
pub use decide::{ACTION_ANNOTATION, OPT_IN_ANNOTATION, SkipReason, Verdict, cooldown_key, decide};
pub use policies::{ApprovalError, approval_cause};
pub use remember::{Horizons, Remembered};
pub use stale::Stale;
pub use verify::{Watch, Watches};

use autoheal_core::alert::Alert;
use autoheal_core::audit::{AuditError, AuditLog};
use autoheal_core::event::{
    ActionStarted, ActionSubject, ApprovalCause, ChainStep, DecisionSkip, EventBody, EventKind,
};
use autoheal_core::mode::{DryRunReason, ExecutionMode};
use autoheal_core::util::unix_now;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::switches::Switches;
use autoheal_sandbox::PluginRuntime;
use autoheal_sandbox::capability::HostServices;
use autoheal_sandbox::registry::{Plugin, PluginSet};

/// One alert's decision (the API's type: `POST /alert` answers with it).
pub use autoheal_api::alert::{AlertDecision, Decision};

/// What [`Engine::plan`] decided for a batch of alerts: the answer, the
/// events to record, the actions to start once they are recorded.
#[derive(Default)]
struct Plan {
    decisions: Vec<AlertDecision>,
    events: Vec<EventBody>,
    actions: Vec<PendingAction>,
    /// Where each action's decision and `action_started` are, in
    /// `decisions` and `events` (its claim may rewrite them).
    positions: Vec<(usize, usize)>,
    cooldown_keys: Vec<String>,
}

/// An admitted action, not yet started.
struct PendingAction {
    plugin: Arc<Plugin>,
    alert: Arc<Alert>,
    /// The cooldown (and, in a cluster, the claim) it was admitted under.
    cooldown_key: String,
    mode: ExecutionMode,
    places: Places,
    purpose: Purpose,
}

/// What an admitted action is for.
#[derive(Clone)]
enum Purpose {
    /// Act; when the plugin verifies, watch whether the alert resolves.
    Act { chain: Option<ChainStep> },
    /// The dry-run preview of an action that then waits for an operator.
    Preview {
        cause: ApprovalCause,
        cooldown_key: String,
        chain: Option<ChainStep>,
    },
}

/// A verdict with what admitting it decided: its places, how it runs, why.
struct Admitted {
    verdict: Verdict,
    places: Option<Places>,
    mode: ExecutionMode,
    dry_run_reason: Option<DryRunReason>,
    purpose: Purpose,
}

/// How a verdict reached [`Engine::admit`]: decided on a webhook, or an
/// approved action, or the next step of a chain.
#[derive(Clone)]
enum Origin {
    /// Decided on an alert; the plugin's own policies apply.
    Decided,
    /// An operator approved it: no approval again, and `plugin` is the
    /// version its preview ran (not whatever has its name now).
    Approved {
        chain: Option<ChainStep>,
        plugin: Arc<Plugin>,
    },
    /// The next plugin of an escalation chain.
    Escalated { chain: ChainStep },
}

/// What an admitted action holds until it is done: its place among the
/// pending actions and, for a real one, its share of the budgets.
struct Places {
    _slot: Slot,
    _budget: Option<BudgetTicket>,
}

impl Places {
    /// The action runs in dry-run after all: it spends no budget.
    fn release_budget(&mut self) {
        self._budget = None;
    }

    /// The plugin declined: the action changed nothing, so its start is
    /// taken out of the `max_actions` window too.
    fn refund_budget(&mut self) {
        if let Some(ticket) = self._budget.take() {
            ticket.refund();
        }
    }
}

/// Decides on each alert and dispatches the chosen plugins; holds what a
/// decision needs (the plugin set, the cooldowns) and nothing else.
pub struct Engine {
    config: Arc<Config>,
    switches: Arc<Switches>,
    audit: Arc<AuditLog>,
    runtime: Arc<PluginRuntime>,
    services: HostServices,
    plugins: RwLock<Arc<PluginSet>>,
    cooldowns: Mutex<Cooldowns>,
    tasks: TaskTracker,
    admission: Arc<Admission>,
    budgets: Arc<Budgets>,
    approvals: Mutex<Approvals>,
    watches: Mutex<Watches>,
    /// The replicas' etcd, when this host is one of a cluster.
    cluster: Option<Arc<Cluster>>,
}

impl Engine {
    /// An engine on these parts; the plugin set and what it remembers are the starting state.
    #[allow(clippy::too_many_arguments)] // the parts of a host, each needed
    pub fn new(
        config: Arc<Config>,
        switches: Arc<Switches>,
        audit: Arc<AuditLog>,
        runtime: Arc<PluginRuntime>,
        services: HostServices,
        plugins: PluginSet,
        remembered: Remembered,
        cluster: Option<Arc<Cluster>>,
    ) -> Self {
        let Remembered {
            cooldowns,
            budgets,
            approvals,
            watches: resumed,
        } = remembered;
        let mut watches = Watches::default();
        for watch in resumed {
            watches.add(watch);
        }
        let admission = Admission::new(config.max_pending_actions);
        Self {
            config,
            switches,
            audit,
            runtime,
            services,
            plugins: RwLock::new(Arc::new(plugins)),
            cooldowns: Mutex::new(cooldowns),
            tasks: TaskTracker::new(),
            admission,
            budgets,
            approvals: Mutex::new(approvals),
            watches: Mutex::new(watches),
            cluster,
        }
    }

    fn approvals(&self) -> MutexGuard<'_, Approvals> {
        self.approvals.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn watches(&self) -> MutexGuard<'_, Watches> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The actions waiting for an operator, oldest first.
    pub fn pending_approvals(&self) -> Vec<PendingApproval> {
        self.approvals().pending()
    }

    /// The actions whose effect is awaited, nearest deadline first.
    pub fn verifying(&self) -> Vec<Watch> {
        self.watches().all()
    }

    /// The plugins serving now.
    pub fn plugins(&self) -> Arc<PluginSet> {
        self.plugins.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the plugin set; invocations already running keep theirs.
    pub fn set_plugins(&self, plugins: PluginSet) {
        *self.plugins.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(plugins);
    }

    /// The blast-radius budgets and what is spent of them now.
    pub fn budget_report(&self) -> BudgetReport {
        self.budgets.report(unix_now())
    }

    /// The cooldowns running now.
    pub fn active_cooldowns(&self) -> Vec<ActiveCooldown> {
        let cooldowns = self.cooldowns.lock().unwrap_or_else(|p| p.into_inner());
        cooldowns.active(unix_now()).collect()
    }

    /// Decides on every alert, records the decisions, and starts the actions.
    /// Returns at once: action results arrive later as events. No claims
    /// are asked for: in a cluster, webhooks go through
    /// [`Engine::process_webhook`].
    pub fn process(self: &Arc<Self>, alerts: Vec<Alert>) -> Vec<AlertDecision> {
        let plan = self.plan(alerts);
        self.audit.emit_all(plan.events);
        self.start(plan.actions);
        plan.decisions
    }

    /// A webhook: `received` and the decisions are committed together, in
    /// one write, before any action starts. If they cannot be committed,
    /// nothing starts and the cooldowns begun for them are taken back, so
    /// that Alertmanager's retry is decided afresh.
    pub async fn process_webhook(
        self: &Arc<Self>,
        received: EventBody,
        alerts: Vec<Alert>,
    ) -> Result<Vec<AlertDecision>, AuditError> {
        let mut plan = self.plan(alerts);
        let settled = self.settle_plan_claims(&mut plan).await;
        let mut received = received;
        if let EventBody::WebhookReceived(webhook) = &mut received {
            webhook.decisions = Some(plan.events.len());
        }
        let mut events = Vec::with_capacity(plan.events.len() + 1);
        events.push(received);
        events.extend(plan.events);
        match self.audit.emit_all_durable(events).await {
            Ok(_) => {
                self.start(settled.actions);
                Ok(plan.decisions)
            }
            Err(e) => {
                self.take_back(&plan.cooldown_keys, settled.won);
                Err(e)
            }
        }
    }

    /// The claims of a plan's actions (in a cluster), applied to its
    /// decisions and events.
    async fn settle_plan_claims(&self, plan: &mut Plan) -> claims::Settled {
        let actions = std::mem::take(&mut plan.actions);
        let positions = std::mem::take(&mut plan.positions);
        // Each action's own decision and event, borrowed apart.
        let mut decisions: Vec<Option<&mut AlertDecision>> = plan.decisions.iter_mut().map(Some).collect();
        let mut events: Vec<Option<&mut EventBody>> = plan.events.iter_mut().map(Some).collect();
        let planned = actions
            .into_iter()
            .zip(positions)
            .map(|(action, (d, e))| claims::Planned {
                decision: decisions[d].take().expect("one action per decision"),
                event: events[e].take().expect("one action per event"),
                action,
            })
            .collect();
        self.settle_claims(planned).await
    }

    /// Decides, starts cooldowns (under one lock, so that two copies of an
    /// alert in flight at once cannot both act) and admits actions; records
    /// and starts nothing.
    fn plan(&self, alerts: Vec<Alert>) -> Plan {
        let plugins = self.plugins();
        // One mode for the whole webhook, read once.
        let switched = self.switches.mode();
        let mut plan = Plan::default();
        for mut alert in alerts {
            alert.ensure_fingerprint();
            let alert = Arc::new(alert);
            if !alert.is_firing() {
                plan.events
                    .extend(self.alert_resolved(&alert.fingerprint, unix_now()));
            }
            let verdicts = {
                let mut cooldowns = self.cooldowns.lock().unwrap_or_else(|p| p.into_inner());
                let now = unix_now();
                let mut admitted = Vec::new();
                for verdict in decide(&alert, &plugins, &cooldowns, &self.config, now) {
                    let verdict = self.unless_awaiting_approval(verdict);
                    admitted.push(self.admit(
                        verdict,
                        &alert,
                        &Origin::Decided,
                        now,
                        switched,
                        &mut cooldowns,
                        &mut plan.cooldown_keys,
                    ));
                }
                admitted
            };
            for admitted in verdicts {
                let (decision, event, action) = self.plan_one(&alert, admitted);
                if let Some(action) = action {
                    plan.positions.push((plan.decisions.len(), plan.events.len()));
                    plan.actions.push(action);
                }
                plan.decisions.push(decision);
                plan.events.push(event);
            }
        }
        plan
    }

    /// A skip, `awaiting_approval`, for an action that already waits for an
    /// operator (its approval may outlast its cooldown).
    fn unless_awaiting_approval(&self, verdict: Verdict) -> Verdict {
        match &verdict {
            Verdict::Act {
                plugin, cooldown_key, ..
            } if self.approvals().waits_for(cooldown_key) => Verdict::skip_by(
                SkipReason::AwaitingApproval,
                &plugin.manifest.name,
                format!(
                    "{}'s action on this alert waits for an operator (GET /approvals)",
                    plugin.manifest.name
                ),
            ),
            _ => verdict,
        }
    }

    /// Spawns the admitted actions.
    fn start(self: &Arc<Self>, actions: Vec<PendingAction>) {
        for pending in actions {
            let engine = self.clone();
            self.tasks.spawn(engine.perform(pending));
        }
    }

    /// Admits a verdict under the switches' mode `switched`: how it runs
    /// (for real, in dry-run, or as the preview of an approval), its places,
    /// the cooldown it starts (added to `started`). A verdict past a bound
    /// becomes `overloaded` or `budget`, and starts no cooldown.
    #[allow(clippy::too_many_arguments)] // the parts of one decision, all needed at once
    fn admit(
        &self,
        verdict: Verdict,
        alert: &Alert,
        origin: &Origin,
        now: f64,
        switched: (ExecutionMode, Option<DryRunReason>),
        cooldowns: &mut Cooldowns,
        started: &mut Vec<String>,
    ) -> Admitted {
        let (switch_mode, switch_reason) = switched;
        let Verdict::Act {
            plugin,
            cooldown_key,
            cooldown_sec,
        } = &verdict
        else {
            return Admitted {
                verdict,
                places: None,
                mode: switch_mode,
                dry_run_reason: switch_reason,
                purpose: Purpose::Act { chain: None },
            };
        };
        let chain = match origin {
            Origin::Decided => first_step(plugin),
            Origin::Approved { chain, .. } => chain.clone(),
            Origin::Escalated { chain } => Some(chain.clone()),
        };
        let cause = match origin {
            Origin::Approved { .. } => None,
            _ => approval_cause(&plugin.manifest, alert),
        };
        let (mode, dry_run_reason, purpose) = match cause {
            Some(cause) if switch_mode == ExecutionMode::Real => (
                ExecutionMode::DryRun,
                Some(DryRunReason::Approval),
                Purpose::Preview {
                    cause,
                    cooldown_key: cooldown_key.clone(),
                    chain,
                },
            ),
            _ => (switch_mode, switch_reason, Purpose::Act { chain }),
        };
        if matches!(purpose, Purpose::Preview { .. })
            && self.approvals().len() >= approvals::MAX_PENDING_APPROVALS
        {
            let skip = Verdict::skip_by(
                SkipReason::Overloaded,
                &plugin.manifest.name,
                format!(
                    "{} approvals already wait, the most that may; {} needs one",
                    approvals::MAX_PENDING_APPROVALS,
                    plugin.manifest.name
                ),
            );
            return Admitted {
                verdict: skip,
                places: None,
                mode,
                dry_run_reason,
                purpose,
            };
        }
        let (key, secs) = (cooldown_key.clone(), *cooldown_sec);
        let (verdict, places) = self.take_places(verdict, alert, mode, now);
        if places.is_some() {
            cooldowns.start(key.clone(), alert.alertname(), now + secs as f64, now);
            started.push(key);
        }
        Admitted {
            verdict,
            places,
            mode,
            dry_run_reason,
            purpose,
        }
    }

    /// A place for an `Act` and, for a real one, its share of the budgets;
    /// or the verdict `overloaded` or `budget`.
    fn take_places(
        &self,
        verdict: Verdict,
        alert: &Alert,
        mode: ExecutionMode,
        now: f64,
    ) -> (Verdict, Option<Places>) {
        let Verdict::Act { plugin, .. } = &verdict else {
            return (verdict, None);
        };
        let slot = match self
            .admission
            .try_admit(&plugin.manifest.name, plugin.manifest.max_concurrent)
        {
            Ok(slot) => slot,
            Err(refusal) => {
                let detail = match refusal {
                    Refusal::Host(max) => format!("{max} actions are already pending (max_pending_actions)"),
                    Refusal::Plugin(max) => format!(
                        "{} already has {max} actions pending (its limits.max_concurrent)",
                        plugin.manifest.name
                    ),
                };
                let skip = Verdict::skip_by(SkipReason::Overloaded, &plugin.manifest.name, detail);
                return (skip, None);
            }
        };
        if mode != ExecutionMode::Real {
            let places = Places {
                _slot: slot,
                _budget: None,
            };
            return (verdict, Some(places));
        }
        match self.budgets.try_take(alert, now) {
            Ok(ticket) => {
                let places = Places {
                    _slot: slot,
                    _budget: Some(ticket),
                };
                (verdict, Some(places))
            }
            Err(Exhausted { budget, detail }) => {
                let skip = Verdict::Skip {
                    reason: SkipReason::Budget,
                    detail,
                    plugin: Some(plugin.manifest.name.clone()),
                    remaining_sec: None,
                    budget: Some(budget),
                };
                (skip, None)
            }
        }
    }

    fn plan_one(
        &self,
        alert: &Arc<Alert>,
        admitted: Admitted,
    ) -> (AlertDecision, EventBody, Option<PendingAction>) {
        let Admitted {
            verdict,
            places,
            mode,
            dry_run_reason,
            purpose,
        } = admitted;
        let mut decision = AlertDecision {
            alertname: alert.alertname().to_owned(),
            fingerprint: alert.fingerprint.clone(),
            status: alert.status,
            decision: Decision::Skip,
            reason: None,
            detail: None,
            plugin: None,
            remaining_sec: None,
            mode: None,
        };
        match verdict {
            Verdict::Skip {
                reason,
                detail,
                plugin,
                remaining_sec,
                budget,
            } => {
                let event = EventBody::DecisionSkip(DecisionSkip {
                    plugin: plugin.clone(),
                    remaining_sec,
                    budget,
                    ..DecisionSkip::new(alert, reason, detail.clone())
                });
                decision.reason = Some(reason);
                decision.detail = Some(detail);
                decision.plugin = plugin;
                decision.remaining_sec = remaining_sec;
                (decision, event, None)
            }
            Verdict::Act {
                plugin,
                cooldown_key,
                cooldown_sec,
            } => {
                let now = unix_now();
                let subject = ActionSubject::new(alert, &plugin.manifest.name, &plugin.manifest.version);
                let event = EventBody::ActionStarted(ActionStarted {
                    alertname: subject.alertname,
                    cooldown_key: cooldown_key.clone(),
                    cooldown_sec,
                    cooldown_until: now + cooldown_sec as f64,
                    dry_run_reason,
                    fingerprint: subject.fingerprint,
                    generator_url: subject.generator_url,
                    mode,
                    plugin: subject.plugin,
                    plugin_version: subject.plugin_version,
                    status: subject.status,
                });
                decision.decision = match purpose {
                    Purpose::Preview { .. } => Decision::Approval,
                    Purpose::Act { .. } => Decision::Act,
                };
                decision.plugin = Some(plugin.manifest.name.clone());
                decision.mode = Some(mode);
                let places = places.expect("an admitted action has its places");
                let action = PendingAction {
                    plugin,
                    alert: alert.clone(),
                    cooldown_key,
                    mode,
                    places,
                    purpose,
                };
                (decision, event, Some(action))
            }
        }
    }

    /// Runs an admitted action and records what it did; then, for a preview,
    /// asks for the approval, and for a step of a chain, watches its effect.
    async fn perform(self: Arc<Self>, pending: PendingAction) {
        let PendingAction {
            plugin,
            alert,
            cooldown_key,
            mode,
            mut places,
            purpose,
        } = pending;
        let started_at = unix_now();
        let mut events = crate::action_events::run_action(
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
            let until = self.after_skip(&plugin, &cooldown_key);
            skipped.cooldown_key = Some(cooldown_key);
            skipped.cooldown_until = Some(until);
            places.refund_budget();
        }
        let outcome = events.last().map(EventBody::kind);
        let preview = match (&purpose, events.last()) {
            (Purpose::Preview { .. }, Some(EventBody::ActionDryRun(done))) => {
                Some((done.calls.clone(), done.output.clone()))
            }
            _ => None,
        };
        self.audit.emit_all(events);
        // The places (pending slot, budget) are freed when the action is done.
        drop(places);
        match purpose {
            Purpose::Preview {
                cause,
                cooldown_key,
                chain,
            } => {
                if let Some((calls, summary)) = preview {
                    let asked = policies::Asked {
                        cause,
                        cooldown_key,
                        chain,
                        calls,
                        summary,
                    };
                    self.request_approval(&plugin, &alert, asked).await;
                }
            }
            // A skip changed nothing: there is no effect to verify (a
            // recovery after it is not its doing) and no failure to
            // escalate; the chain starts again at the next webhook.
            Purpose::Act { chain: Some(_) } if outcome == Some(EventKind::ActionSkipped) => {}
            Purpose::Act { chain: Some(chain) } => {
                self.after_step(&plugin, alert, chain, outcome, mode, started_at);
            }
            Purpose::Act { chain: None } => {}
        }
    }

    /// The plugin declined to act: the cooldown its dispatch began is cut
    /// to the manifest's `cooldown_after_skip` (never lengthened), and in a
    /// cluster the claim is given back, so that the alert, re-sent while it
    /// still fires, is tried again. Returns when the cooldown now ends.
    fn after_skip(&self, plugin: &Plugin, cooldown_key: &str) -> f64 {
        let now = unix_now();
        let until = now + plugin.manifest.cooldown_after_skip.as_secs_f64();
        let until = self
            .cooldowns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .cut(cooldown_key, until, now);
        if let Some(cluster) = self.cluster.clone() {
            let key = cooldown_key.to_owned();
            self.tasks.spawn(async move { cluster.release(&key).await });
        }
        until
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

/// The chain an action decided on an alert begins, when its plugin verifies.
fn first_step(plugin: &Plugin) -> Option<ChainStep> {
    let within = plugin.manifest.verify_within?;
    let mut chain = vec![plugin.manifest.name.clone()];
    chain.extend(plugin.manifest.escalate.iter().cloned());
    Some(ChainStep {
        chain,
        step: 1,
        within_sec: within.as_secs_f64(),
    })
}
