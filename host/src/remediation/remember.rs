//! What remediation carries across a restart of the host, read back from the
//! audit trail at start in one backward scan: the cooldowns still running,
//! the real actions started in the budget's window and in the repeat caps'
//! windows, the approvals still
//! waiting (expired ones expire at the first tick), and the
//! actions whose effect is still being watched (`[verify]`; a deadline that
//! passed while the host was down is judged at the first tick; only what
//! ran, as `verify::judged` says), the
//! actions queued that never ran (decided afresh at start), the
//! operators' pauses started and not ended whose end is still ahead, and
//! the alerts held by their plugin's grace (one that came due meanwhile is
//! decided at the first tick).

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use autoheal_api::pauses::{MAX_PAUSE_SEC, Pause};
use autoheal_core::audit::{line_has_field, line_has_kind, line_ts, scan_backwards};
use autoheal_core::event::{ActionQueued, Actor, Event, EventBody, SkipReason};
use autoheal_core::mode::ExecutionMode;

use super::approvals::Approvals;
use super::budget::Budgets;
use super::cooldown::Cooldowns;
use super::holds::Hold;
use super::repeat_cap::{RepeatCaps, Start};
use super::verify::{Watch, resumable};
use crate::config::Budgets as BudgetConfig;

/// Remediation's state from before a restart.
pub struct Remembered {
    /// The cooldowns still running.
    pub cooldowns: Cooldowns,
    /// The budgets, with the real actions started in their window.
    pub budgets: Arc<Budgets>,
    /// The real actions the repeat caps count (in their longest window).
    pub repeat_caps: Arc<RepeatCaps>,
    /// The approvals requested and not ended.
    pub approvals: Approvals,
    /// The watches begun and not ended, oldest first.
    pub watches: Vec<Watch>,
    /// The actions queued and never run (the host stopped first), oldest
    /// first: their alerts are decided afresh at start.
    pub queued: Vec<ActionQueued>,
    /// The pauses started, not ended, and not over yet.
    pub pauses: Vec<Pause>,
    /// The alerts held (`alert_deferred`) and neither decided since
    /// (`deferred_due`) nor resolved (`decision_skip` `resolved` naming
    /// the plugin).
    pub holds: Vec<Hold>,
}

/// How far back each part of what is remembered reads, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Horizons {
    /// The longest cooldown.
    pub cooldown_sec: f64,
    /// The longest time an approval waits.
    pub approval_sec: f64,
    /// The longest `[verify] within`: a watch begun before it has passed
    /// its deadline whatever its plugin.
    pub verify_sec: f64,
    /// How far back a hold is looked for: none when no plugin has a grace.
    /// A hold older than it is forgotten (Alertmanager's repeat sends the
    /// alert again if it still fires).
    pub grace_sec: f64,
    /// The longest window of any repeat cap (`[limits] max_actions`, `max_actions_all_keys`).
    pub repeat_sec: f64,
}

/// The kinds the scan parses; every other line costs a look, not a parse.
const REMEMBERED_KINDS: &[&str] = &[
    "action_started",
    "action_skipped",
    "approval_requested",
    "approval_recorded",
    "approval_granted",
    "approval_denied",
    "approval_expired",
    "approval_cancelled",
    "remediation_watched",
    "remediation_verified",
    "remediation_ineffective",
    "action_queued",
    "action_dropped",
    "pause_started",
    "pause_ended",
    "alert_deferred",
    "deferred_due",
];

/// Skips, as frequent as webhooks: parsed only when one can matter — it
/// ended a queued action's wait (it has `queued_at`), or, while holds are
/// read, it may end a hold without a `deferred_due`. (Parsing every one made
/// a start on a million-event trail 6x slower; BENCHMARKS.md.)
const SKIPS: &[&str] = &["decision_skip"];

fn skip_wanted(line: &[u8], for_holds: bool) -> bool {
    line_has_kind(line, SKIPS) && (for_holds || line_has_field(line, "queued_at"))
}

impl Remembered {
    /// Reads the trail from its end, each part as far back as it needs —
    /// the cooldowns `horizons.cooldown_sec` (the longest cooldown), the
    /// budgets their window, the approvals `horizons.approval_sec` (the
    /// longest approval expiry), the repeat caps' real actions
    /// `horizons.repeat_sec` (their longest window) — in one scan that
    /// stops at the farthest.
    pub fn rebuild(
        audit_path: &Path,
        now: f64,
        horizons: Horizons,
        budget: BudgetConfig,
    ) -> std::io::Result<Self> {
        let mut cooldowns = Cooldowns::default();
        let mut approvals = Approvals::default();
        let budgets = Budgets::new(budget);
        let cooldown_since = now - horizons.cooldown_sec;
        let approval_since = now - horizons.approval_sec;
        let budget_since = budgets.window_start(now);
        let repeat_caps = RepeatCaps::new();
        let repeat_since = now - horizons.repeat_sec;
        let mut for_repeats = horizons.repeat_sec > 0.0;
        let verify_since = now - horizons.verify_sec;
        let mut watches = Vec::new();
        // Watches ended (read first, being newer), by alert, plugin and step.
        let mut ended: HashSet<(String, String, usize)> = HashSet::new();
        let mut for_watches = horizons.verify_sec > 0.0;
        // A pause lasts at most `MAX_PAUSE_SEC`: one started before that is over.
        let pause_since = now - MAX_PAUSE_SEC as f64;
        let mut for_pauses = true;
        let mut pauses = Vec::new();
        // Pauses ended (read first, being newer).
        let mut pauses_ended: HashSet<String> = HashSet::new();
        let grace_since = now - horizons.grace_sec;
        let mut for_holds = horizons.grace_sec > 0.0;
        // Read backwards, the first event of a plugin and fingerprint says
        // whether it is held: an `alert_deferred` (held), or what ended it.
        let mut settled: HashSet<(String, String)> = HashSet::new();
        let mut holds = Vec::new();
        // Whether each part still reads: once a line is older than its
        // horizon, so is everything before it.
        let (mut for_cooldowns, mut for_budgets, mut for_approvals) = (true, budget_since.is_some(), true);
        // Skips read (newest first) whose `action_started` is not read yet,
        // by cooldown key: that start changed nothing and spends no budget.
        let mut skips: HashMap<String, usize> = HashMap::new();
        // Queue waits ended (read first, being newer) and not yet matched
        // with their `action_queued`, by alert and plugin; and the waits
        // that never ended.
        let mut dequeued: HashMap<(String, String), usize> = HashMap::new();
        let mut queued = Vec::new();
        // Grants recorded (read first, being newer) of approvals whose
        // request is not read yet, newest first.
        let mut grants: HashMap<String, Vec<Actor>> = HashMap::new();
        scan_backwards(audit_path, |line| {
            if let Some(ts) = line_ts(line) {
                for_cooldowns &= ts >= cooldown_since;
                for_approvals &= ts >= approval_since;
                for_watches &= ts >= verify_since;
                for_pauses &= ts >= pause_since;
                for_holds &= ts >= grace_since;
                for_repeats &= ts >= repeat_since;
                if budget_since.is_some_and(|since| ts < since) {
                    for_budgets = false;
                }
            }
            if !for_cooldowns
                && !for_budgets
                && !for_approvals
                && !for_watches
                && !for_pauses
                && !for_holds
                && !for_repeats
            {
                return ControlFlow::Break(());
            }
            let wanted = line_has_kind(line, REMEMBERED_KINDS) || skip_wanted(line, for_holds);
            if !wanted {
                return ControlFlow::Continue(());
            }
            let Ok(event) = serde_json::from_slice::<Event>(line) else {
                return ControlFlow::Continue(());
            };
            let kind = event.kind();
            match event.body {
                EventBody::ActionStarted(started) => {
                    if started.queued_sec.is_some() {
                        *dequeued
                            .entry((started.fingerprint.clone(), started.plugin.clone()))
                            .or_default() += 1;
                    }
                    let skipped = match skips.get_mut(&started.cooldown_key) {
                        Some(pending) if *pending > 0 => {
                            *pending -= 1;
                            true
                        }
                        _ => false,
                    };
                    if for_budgets && started.mode == ExecutionMode::Real && !skipped {
                        budgets.restore_start(event.ts);
                    }
                    // Counted as at admission: real, and not declined.
                    if for_repeats && started.mode == ExecutionMode::Real && !skipped {
                        repeat_caps.restore(Start::new(
                            started.plugin.clone(),
                            started.cooldown_key.clone(),
                            event.ts,
                        ));
                    }
                    if for_cooldowns {
                        cooldowns.restore(started);
                    }
                }
                // A skip's cooldown is the one it cut, newer than its start's.
                // (Skips from before the key was recorded have none: their
                // start's cooldown stands, as it did when they were written.)
                EventBody::ActionSkipped(skipped) => {
                    if let (Some(key), Some(until)) = (skipped.cooldown_key, skipped.cooldown_until) {
                        *skips.entry(key.clone()).or_default() += 1;
                        if for_cooldowns {
                            cooldowns.restore_until(key, skipped.alertname, until);
                        }
                    }
                }
                EventBody::ActionDropped(dropped) => {
                    *dequeued.entry((dropped.fingerprint, dropped.plugin)).or_default() += 1;
                }
                // A skip that ends a wait in the queue (`queued_at`), or a
                // resolved one that ends a hold.
                EventBody::DecisionSkip(skip) => {
                    if let Some(plugin) = &skip.plugin {
                        let key = (plugin.clone(), skip.fingerprint.clone());
                        if skip.queued_at.is_some() {
                            *dequeued.entry((key.1.clone(), key.0.clone())).or_default() += 1;
                        }
                        if for_holds && skip.reason == SkipReason::Resolved {
                            settled.insert(key);
                        }
                    }
                }
                // Its cooldown is restored from its `action_started`, if it
                // ran; one that never ran is decided afresh, so its cooldown
                // is not restored. (One queued longer ago than the longest
                // cooldown is not looked for.)
                EventBody::ActionQueued(waited) if for_cooldowns => {
                    match dequeued.get_mut(&(waited.fingerprint.clone(), waited.plugin.clone())) {
                        Some(ended) if *ended > 0 => *ended -= 1,
                        _ => queued.push(waited),
                    }
                }
                // Read backwards, an approval's end comes before its request.
                EventBody::ApprovalRequested(request)
                    if for_approvals && !approvals.has_ended(&request.approval) =>
                {
                    let id = request.approval.clone();
                    approvals.insert(request, event.ts);
                    for by in grants.remove(&id).into_iter().flatten().rev() {
                        approvals.add_grant(&id, by);
                    }
                }
                EventBody::ApprovalRecorded(recorded)
                    if for_approvals && !approvals.has_ended(&recorded.approval) =>
                {
                    let by = recorded.actor();
                    grants.entry(recorded.approval).or_default().push(by);
                }
                EventBody::ApprovalGranted(ended)
                | EventBody::ApprovalDenied(ended)
                | EventBody::ApprovalExpired(ended)
                | EventBody::ApprovalCancelled(ended)
                    if for_approvals =>
                {
                    approvals.end(ended.approval, kind);
                }
                EventBody::RemediationVerified(done) if for_watches => {
                    ended.insert((done.fingerprint, done.plugin, done.step));
                }
                EventBody::RemediationIneffective(done) if for_watches => {
                    ended.insert((done.fingerprint, done.plugin, done.step));
                }
                EventBody::RemediationWatched(watched) if for_watches => {
                    let key = (
                        watched.fingerprint.clone(),
                        watched.plugin.clone(),
                        watched.chain.step,
                    );
                    // A forced dry-run's watch (written by an older host) is
                    // dropped: it ran nothing, there is nothing to judge.
                    if !ended.contains(&key) && resumable(&watched, event.replica.is_some()) {
                        watches.push(Watch::resumed(watched));
                    }
                }
                EventBody::PauseEnded(ended) if for_pauses => {
                    pauses_ended.insert(ended.pause_id);
                }
                EventBody::PauseStarted(started)
                    if for_pauses && started.until > now && !pauses_ended.contains(&started.pause_id) =>
                {
                    pauses_ended.insert(started.pause_id.clone());
                    pauses.push(Pause {
                        id: started.pause_id,
                        plugin: started.plugin,
                        matchers: started.matchers,
                        reason: started.reason,
                        by: started.by,
                        by_comment: started.by_comment,
                        by_kind: started.by_kind,
                        by_name: started.by_name,
                        until: started.until,
                        replica: started.shared_from.or_else(|| event.replica.clone()),
                    });
                }
                EventBody::AlertDeferred(deferred)
                    if for_holds
                        && settled.insert((deferred.plugin.clone(), deferred.fingerprint.clone())) =>
                {
                    holds.push(Hold::resumed(deferred));
                }
                EventBody::DeferredDue(due) if for_holds => {
                    settled.extend(due.held.into_iter().map(|h| (h.plugin, h.fingerprint)));
                }
                _ => {}
            }
            ControlFlow::Continue(())
        })?;
        watches.reverse();
        queued.reverse();
        Ok(Self {
            cooldowns,
            budgets,
            repeat_caps,
            approvals,
            watches,
            queued,
            pauses,
            holds,
        })
    }
}
