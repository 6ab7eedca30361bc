//! The remediation engine: for each alert of a webhook, decide, record the
//! decision, and run the chosen plugins in the background.

mod admission;
mod budget;
mod cooldown;
mod decide;
mod remember;

use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use tokio_util::task::TaskTracker;

pub use admission::{Admission, Refusal, Slot};
pub use budget::{BudgetReport, BudgetTicket, Budgets, Exhausted};
pub use cooldown::{ActiveCooldown, Cooldowns};
pub use decide::{ACTION_ANNOTATION, OPT_IN_ANNOTATION, SkipReason, Verdict, cooldown_key, decide};
pub use remember::Remembered;

use autoheal_core::alert::{Alert, AlertStatus};
use autoheal_core::audit::{AuditError, AuditLog};
use autoheal_core::event::{ActionStarted, ActionSubject, DecisionSkip, EventBody};
use autoheal_core::mode::{DryRunReason, ExecutionMode};
use autoheal_core::util::unix_now;

use crate::action_events::run_action;
use crate::config::Config;
use crate::switches::Switches;
use autoheal_sandbox::PluginRuntime;
use autoheal_sandbox::capability::HostServices;
use autoheal_sandbox::registry::{Plugin, PluginSet};

/// What the webhook response says about one alert (and plugin).
#[derive(Debug, Clone, Serialize)]
pub struct AlertDecision {
    /// The alert's name.
    pub alertname: String,
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// `act` or `skip`.
    pub decision: &'static str,
    /// Why not, for `skip`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<SkipReason>,
    /// The why, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The plugin chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Seconds of cooldown left, for `cooldown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_sec: Option<u64>,
    /// `real` or `dry_run`, for `act`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<ExecutionMode>,
}

/// What [`Engine::plan`] decided for a batch of alerts: the answer, the
/// events to record, the actions to start once they are recorded.
#[derive(Default)]
struct Plan {
    decisions: Vec<AlertDecision>,
    events: Vec<EventBody>,
    actions: Vec<PendingAction>,
    cooldown_keys: Vec<String>,
}

/// An admitted action, not yet started.
struct PendingAction {
    plugin: Arc<Plugin>,
    alert: Arc<Alert>,
    mode: ExecutionMode,
    places: Places,
}

/// What an admitted action holds until it is done: its place among the
/// pending actions and, for a real one, its share of the budgets.
struct Places {
    _slot: Slot,
    _budget: Option<BudgetTicket>,
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
}

impl Engine {
    /// An engine on these parts; the plugin set and what it remembers are the starting state.
    pub fn new(
        config: Arc<Config>,
        switches: Arc<Switches>,
        audit: Arc<AuditLog>,
        runtime: Arc<PluginRuntime>,
        services: HostServices,
        plugins: PluginSet,
        remembered: Remembered,
    ) -> Self {
        let Remembered { cooldowns, budgets } = remembered;
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
        }
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
    /// Returns at once: action results arrive later as events.
    pub fn process(&self, alerts: Vec<Alert>) -> Vec<AlertDecision> {
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
        &self,
        received: EventBody,
        alerts: Vec<Alert>,
    ) -> Result<Vec<AlertDecision>, AuditError> {
        let plan = self.plan(alerts);
        let mut received = received;
        if let EventBody::WebhookReceived(webhook) = &mut received {
            webhook.decisions = Some(plan.events.len());
        }
        let mut events = Vec::with_capacity(plan.events.len() + 1);
        events.push(received);
        events.extend(plan.events);
        match self.audit.emit_all_durable(events).await {
            Ok(_) => {
                self.start(plan.actions);
                Ok(plan.decisions)
            }
            Err(e) => {
                let mut cooldowns = self.cooldowns.lock().unwrap_or_else(|p| p.into_inner());
                for key in &plan.cooldown_keys {
                    cooldowns.forget(key);
                }
                Err(e)
            }
        }
    }

    /// Decides, starts cooldowns (under one lock, so that two copies of an
    /// alert in flight at once cannot both act) and admits actions; records
    /// and starts nothing.
    fn plan(&self, alerts: Vec<Alert>) -> Plan {
        let plugins = self.plugins();
        let (mode, dry_run_reason) = self.switches.mode();
        let mut plan = Plan::default();
        for mut alert in alerts {
            alert.ensure_fingerprint();
            let alert = Arc::new(alert);
            let verdicts = {
                let mut cooldowns = self.cooldowns.lock().unwrap_or_else(|p| p.into_inner());
                let now = unix_now();
                let mut admitted = Vec::new();
                for verdict in decide(&alert, &plugins, &cooldowns, &self.config, now) {
                    let (verdict, places) = self.admit(verdict, &alert, mode, now);
                    if let Verdict::Act {
                        cooldown_key,
                        cooldown_sec,
                        ..
                    } = &verdict
                    {
                        let until = now + *cooldown_sec as f64;
                        cooldowns.start(cooldown_key.clone(), alert.alertname(), until, now);
                        plan.cooldown_keys.push(cooldown_key.clone());
                    }
                    admitted.push((verdict, places));
                }
                admitted
            };
            for (verdict, places) in verdicts {
                let (decision, event, action) = self.plan_one(&alert, verdict, places, mode, dry_run_reason);
                plan.decisions.push(decision);
                plan.events.push(event);
                plan.actions.extend(action);
            }
        }
        plan
    }

    /// Spawns the admitted actions.
    fn start(&self, actions: Vec<PendingAction>) {
        for pending in actions {
            let action = run_action(
                self.audit.clone(),
                self.runtime.clone(),
                self.services.clone(),
                pending.plugin,
                pending.alert,
                pending.mode,
                self.config.chaos_failure_rate,
            );
            let places = pending.places;
            self.tasks.spawn(async move {
                // The places are freed when the action is done.
                let _places = places;
                action.await
            });
        }
    }

    /// A place for an `Act` and, for a real one, its share of the budgets;
    /// or the verdict `overloaded` or `budget` (no cooldown starts).
    fn admit(
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
                let skip = Verdict::Skip {
                    reason: SkipReason::Overloaded,
                    detail,
                    plugin: Some(plugin.manifest.name.clone()),
                    remaining_sec: None,
                    budget: None,
                };
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
        verdict: Verdict,
        places: Option<Places>,
        mode: ExecutionMode,
        dry_run_reason: Option<DryRunReason>,
    ) -> (AlertDecision, EventBody, Option<PendingAction>) {
        let mut decision = AlertDecision {
            alertname: alert.alertname().to_owned(),
            fingerprint: alert.fingerprint.clone(),
            status: alert.status,
            decision: "skip",
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
                    cooldown_key,
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
                decision.decision = "act";
                decision.plugin = Some(plugin.manifest.name.clone());
                decision.mode = Some(mode);
                let places = places.expect("an admitted action has its places");
                let action = PendingAction {
                    plugin,
                    alert: alert.clone(),
                    mode,
                    places,
                };
                (decision, event, Some(action))
            }
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
