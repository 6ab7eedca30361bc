//! Admitting a verdict: how its action runs (for real, in dry-run, or as
//! the preview of an approval), the places it holds (a pending slot and,
//! for a real action, a share of the budgets) and the cooldown it starts.
//! Every path that starts an action (a webhook, a granted approval, the
//! next step of a chain) passes through [`Admitter::admit`], so the
//! cooldowns, the pending actions and the budgets live here.

use std::sync::{Arc, Mutex, MutexGuard};

use autoheal_core::alert::Alert;
use autoheal_core::event::{ApprovalCause, ChainStep, RetryReason};
use autoheal_core::mode::{DryRunReason, ExecutionMode};
use autoheal_core::util::unix_now;
use autoheal_sandbox::registry::Plugin;

use super::approval_flow::ApprovalFlow;
use super::approvals::MAX_PENDING_APPROVALS;
use super::budget::{BudgetReport, Budgets, Exhausted};
use super::cooldown::{ActiveCooldown, Cooldowns};
use super::decide::{SkipReason, Verdict, approval_cause, first_step};
use super::queue::{ActionQueue, NotEntered, Place, Turn};
use super::repeat_cap::{RepeatCaps, RepeatTicket};

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
    /// Refused for a passing reason (the queue was full): its alert is
    /// kept and decided again once that clears.
    pub(super) refused_for: Option<RetryReason>,
}

impl Admitted {
    /// A verdict that starts nothing (a skip decided at admission).
    fn not_started(
        verdict: Verdict,
        mode: ExecutionMode,
        dry_run_reason: Option<DryRunReason>,
        purpose: Purpose,
    ) -> Self {
        Self {
            verdict,
            places: None,
            mode,
            dry_run_reason,
            purpose,
            refused_for: None,
        }
    }

    /// A skip for a passing `reason` under the switches' mode: nothing
    /// starts, and the alert is kept and decided again once it clears.
    pub(super) fn refused_for_now(
        skip: Verdict,
        switched: (ExecutionMode, Option<DryRunReason>),
        reason: RetryReason,
    ) -> Self {
        Self {
            refused_for: Some(reason),
            ..Self::not_started(skip, switched.0, switched.1, Purpose::Act { chain: None })
        }
    }
}

/// What an admitted action holds until it is done: its place among the
/// pending actions, its place to run (with, for a real action, its share
/// of the budgets) or its ticket in the queue for one, and, for a real
/// action, its count toward the plugin's repeat caps.
pub(super) struct Places {
    pub(super) place: Place,
    pub(super) turn: Turn,
    pub(super) repeat: Option<RepeatTicket>,
}

impl Places {
    /// The action runs in dry-run after all: it spends no budget and
    /// counts toward no repeat cap. Returns when it had been counted.
    pub(super) fn release_budget(&mut self) -> Option<f64> {
        match &mut self.turn {
            Turn::Now(running) => running.release_budget(),
            Turn::Queued(waiting) => waiting.release_budget(),
        }
        self.uncount_repeat()
    }

    /// Another replica acts: its count is that replica's.
    pub(super) fn uncount_repeat(&mut self) -> Option<f64> {
        let ticket = self.repeat.take()?;
        let at = ticket.at;
        ticket.refund();
        Some(at)
    }

    /// What the claim of a counted action writes for the replicas' caps.
    pub(super) fn counting(&self) -> Option<crate::cluster::Counting> {
        self.repeat.as_ref().map(|ticket| crate::cluster::Counting {
            at: ticket.at,
            keep_sec: ticket.longest.as_secs(),
        })
    }
}

/// The cooldowns, the pending actions and the blast-radius budgets, and
/// the admission of verdicts against them.
pub(super) struct Admitter {
    cooldowns: Mutex<Cooldowns>,
    queue: Arc<ActionQueue>,
    budgets: Arc<Budgets>,
    repeat_caps: Arc<RepeatCaps>,
}

impl Admitter {
    /// At most `max_pending` actions pending at once; `cooldowns`,
    /// `budgets` and `repeat_caps` as remembered from the trail.
    pub(super) fn new(
        cooldowns: Cooldowns,
        budgets: Arc<Budgets>,
        repeat_caps: Arc<RepeatCaps>,
        max_pending: usize,
    ) -> Self {
        Self {
            cooldowns: Mutex::new(cooldowns),
            queue: ActionQueue::new(max_pending, budgets.clone()),
            budgets,
            repeat_caps,
        }
    }

    /// The counts of the plugins' repeat caps (the cluster's mirror is kept in them).
    pub(super) fn repeat_caps(&self) -> &RepeatCaps {
        &self.repeat_caps
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

    /// The pending actions and their queue.
    pub(super) fn queue(&self) -> &Arc<ActionQueue> {
        &self.queue
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
    /// added to `started`). A verdict past a bound becomes `overloaded`,
    /// `repeat_cap` or `budget`, and starts no cooldown.
    #[allow(clippy::too_many_arguments)] // the parts of one decision, all needed at once
    pub(super) fn admit(
        &self,
        verdict: Verdict,
        alert: &Arc<Alert>,
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
                refused_for: None,
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
            return Admitted::not_started(skip, mode, dry_run_reason, purpose);
        }
        // An operator is not asked for an action the cap would refuse once approved.
        if matches!(purpose, Purpose::Preview { .. })
            && let Some(reached) = self.repeat_caps.would_refuse(&plugin.manifest, cooldown_key, now)
        {
            let skip = Verdict::repeat_cap(&plugin.manifest.name, reached);
            return Admitted::not_started(skip, mode, dry_run_reason, purpose);
        }
        let (key, secs) = (cooldown_key.clone(), *cooldown_sec);
        let (verdict, places, refused_for) = self.take_places(verdict, alert, mode);
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
            refused_for,
        }
    }

    /// A place for an `Act` (to run now, or in the queue) and, for a real
    /// one, its count toward the plugin's repeat caps and its share of the
    /// budgets; or the verdict `overloaded` (the queue is full),
    /// `repeat_cap` or `budget` (the `max_actions` window is spent); with
    /// the passing reason it was refused for, if it was.
    fn take_places(
        &self,
        verdict: Verdict,
        alert: &Arc<Alert>,
        mode: ExecutionMode,
    ) -> (Verdict, Option<Places>, Option<RetryReason>) {
        let Verdict::Act {
            plugin, cooldown_key, ..
        } = &verdict
        else {
            return (verdict, None, None);
        };
        let name = &plugin.manifest.name;
        let real = (mode == ExecutionMode::Real).then_some(alert);
        // Before the budgets: an action a person must look at spends none.
        let repeat = match real {
            Some(_) => match self
                .repeat_caps
                .try_take(&plugin.manifest, cooldown_key, unix_now())
            {
                Ok(ticket) => ticket,
                Err(reached) => {
                    return (Verdict::repeat_cap(name, reached), None, None);
                }
            },
            None => None,
        };
        let entered = self
            .queue
            .enter(name, plugin.manifest.max_concurrent, &alert.fingerprint, real);
        let refused = match entered {
            Ok((place, turn)) => return (verdict, Some(Places { place, turn, repeat }), None),
            Err(refused) => refused,
        };
        // Not admitted: not counted either.
        if let Some(counted) = repeat {
            counted.refund();
        }
        match refused {
            NotEntered::Full(max) => {
                let detail =
                    format!("{max} actions are already pending, queued or running (max_pending_actions)");
                let skip = Verdict::skip_by(SkipReason::Overloaded, name, detail);
                (skip, None, Some(RetryReason::Overloaded))
            }
            NotEntered::BudgetSpent(Exhausted { budget, detail }) => {
                let skip = Verdict::Skip {
                    reason: SkipReason::Budget,
                    detail,
                    plugin: Some(name.clone()),
                    remaining_sec: None,
                    budget: Some(budget),
                    paused: None,
                    repeat_cap: None,
                };
                (skip, None, None)
            }
        }
    }
}
