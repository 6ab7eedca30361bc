//! Admitting a verdict: how its action runs (for real, in dry-run, or as
//! the preview of an approval), the places it holds (a pending slot and,
//! for a real action, a share of the budgets) and the cooldown it starts.
//! Every path that starts an action (a webhook, a granted approval, the
//! next step of a chain) passes through [`Admitter::admit`], so the
//! cooldowns, the pending actions and the budgets live here.

use std::sync::{Arc, Mutex, MutexGuard};

use autoheal_core::alert::Alert;
use autoheal_core::event::{ApprovalCause, ChainStep};
use autoheal_core::mode::{DryRunReason, ExecutionMode};
use autoheal_sandbox::registry::Plugin;

use super::admission::{Admission, Refusal, Slot};
use super::approval_flow::ApprovalFlow;
use super::approvals::MAX_PENDING_APPROVALS;
use super::budget::{BudgetReport, BudgetTicket, Budgets, Exhausted};
use super::cooldown::{ActiveCooldown, Cooldowns};
use super::decide::{SkipReason, Verdict, approval_cause, first_step};

/// What an admitted action is for.
#[derive(Clone)]
pub(super) enum Purpose {
    /// Act; when the plugin verifies, watch whether the alert resolves.
    Act { chain: Option<ChainStep> },
    /// The dry-run preview of an action that then waits for an operator.
    Preview {
        cause: ApprovalCause,
        cooldown_key: String,
        chain: Option<ChainStep>,
    },
}

/// How a verdict reached [`Admitter::admit`]: decided on a webhook, or an
/// approved action, or the next step of a chain.
#[derive(Clone)]
pub(super) enum Origin {
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

/// A verdict with what admitting it decided: its places, how it runs, why.
pub(super) struct Admitted {
    pub(super) verdict: Verdict,
    pub(super) places: Option<Places>,
    pub(super) mode: ExecutionMode,
    pub(super) dry_run_reason: Option<DryRunReason>,
    pub(super) purpose: Purpose,
}

/// What an admitted action holds until it is done: its place among the
/// pending actions and, for a real one, its share of the budgets.
pub(super) struct Places {
    _slot: Slot,
    _budget: Option<BudgetTicket>,
}

impl Places {
    /// The action runs in dry-run after all: it spends no budget.
    pub(super) fn release_budget(&mut self) {
        self._budget = None;
    }

    /// The plugin declined: the action changed nothing, so its start is
    /// taken out of the `max_actions` window too.
    pub(super) fn refund_budget(&mut self) {
        if let Some(ticket) = self._budget.take() {
            ticket.refund();
        }
    }
}

/// The cooldowns, the pending actions and the blast-radius budgets, and
/// the admission of verdicts against them.
pub(super) struct Admitter {
    cooldowns: Mutex<Cooldowns>,
    admission: Arc<Admission>,
    budgets: Arc<Budgets>,
}

impl Admitter {
    /// At most `max_pending` actions pending at once; `cooldowns` and
    /// `budgets` as remembered from the trail.
    pub(super) fn new(cooldowns: Cooldowns, budgets: Arc<Budgets>, max_pending: usize) -> Self {
        Self {
            cooldowns: Mutex::new(cooldowns),
            admission: Admission::new(max_pending),
            budgets,
        }
    }

    /// The cooldowns, locked: a decision and the cooldown it starts are
    /// made under one lock, so that two copies of an alert in flight at
    /// once cannot both act.
    pub(super) fn cooldowns(&self) -> MutexGuard<'_, Cooldowns> {
        self.cooldowns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cooldowns running at `now`.
    pub(super) fn active_cooldowns(&self, now: f64) -> Vec<ActiveCooldown> {
        self.cooldowns().active(now).collect()
    }

    /// The budgets and what is spent of them at `now`.
    pub(super) fn budget_report(&self, now: f64) -> BudgetReport {
        self.budgets.report(now)
    }

    /// Cuts the cooldown `key` to end at `until` (never lengthened);
    /// returns when it now ends.
    pub(super) fn cut_cooldown(&self, key: &str, until: f64, now: f64) -> f64 {
        self.cooldowns().cut(key, until, now)
    }

    /// Takes back the cooldowns `keys`: the alert is decided afresh.
    pub(super) fn forget_cooldowns(&self, keys: &[String]) {
        let mut cooldowns = self.cooldowns();
        for key in keys {
            cooldowns.forget(key);
        }
    }

    /// Admits a verdict under the switches' mode `switched`: how it runs
    /// (for real, in dry-run, or as the preview of an approval), its places,
    /// the cooldown it starts in `cooldowns` (held locked by the caller, and
    /// added to `started`). A verdict past a bound becomes `overloaded` or
    /// `budget`, and starts no cooldown.
    #[allow(clippy::too_many_arguments)] // the parts of one decision, all needed at once
    pub(super) fn admit(
        &self,
        verdict: Verdict,
        alert: &Alert,
        origin: &Origin,
        now: f64,
        switched: (ExecutionMode, Option<DryRunReason>),
        approvals: &ApprovalFlow,
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
        if matches!(purpose, Purpose::Preview { .. }) && approvals.len() >= MAX_PENDING_APPROVALS {
            let skip = Verdict::skip_by(
                SkipReason::Overloaded,
                &plugin.manifest.name,
                format!(
                    "{MAX_PENDING_APPROVALS} approvals already wait, the most that may; {} needs one",
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
                    pause_id: None,
                    pause_reason: None,
                    paused_until: None,
                };
                (skip, None)
            }
        }
    }
}
