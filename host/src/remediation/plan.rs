//! What is planned for admitted verdicts before anything is recorded or
//! started: each verdict's answer ([`AlertDecision`]), its event
//! (`decision_skip`, `action_started`, or `action_queued` for an action
//! that waits for a place to run) and, for an action, what starts once the
//! event is recorded ([`PendingAction`]).

use std::sync::Arc;

use autoheal_core::alert::Alert;
use autoheal_core::event::{
    ActionQueued, ActionStarted, ActionSubject, DecisionSkip, EventBody, Retry, RetryReason,
};
use autoheal_core::mode::{DryRunReason, ExecutionMode};
use autoheal_core::util::unix_now;
use autoheal_sandbox::registry::Plugin;

use super::admit::{Admitted, Places, Purpose};
use super::decide::Verdict;
use super::queue::{Turn, Waiting};
use autoheal_api::alert::{AlertDecision, Decision};

/// What was planned for a webhook's alerts: the answer, the events to
/// record, the actions to start once they are recorded.
#[derive(Default)]
pub(super) struct Plan {
    pub(super) decisions: Vec<AlertDecision>,
    pub(super) events: Vec<EventBody>,
    pub(super) actions: Vec<PendingAction>,
    /// Where each action's decision and `action_started` are, in
    /// `decisions` and `events` (its claim may rewrite them).
    pub(super) positions: Vec<(usize, usize)>,
    /// The cooldowns the plan began (taken back if it is not recorded).
    pub(super) cooldown_keys: Vec<String>,
    /// The holds the plan began, by plugin and fingerprint (taken back too).
    pub(super) hold_keys: Vec<(String, String)>,
    /// Actions refused for a passing reason: their alerts are kept and
    /// decided again once it clears.
    pub(super) refused: Vec<RefusedForNow>,
}

/// An action refused for a passing reason.
pub(super) struct RefusedForNow {
    pub(super) alert: Arc<Alert>,
    pub(super) plugin: String,
    pub(super) reason: RetryReason,
}

impl Plan {
    /// Adds one admitted verdict of `alert`.
    pub(super) fn push(&mut self, alert: &Arc<Alert>, admitted: Admitted) {
        if let (
            Some(reason),
            Verdict::Skip {
                plugin: Some(plugin), ..
            },
        ) = (admitted.refused_for, &admitted.verdict)
        {
            self.refused.push(RefusedForNow {
                alert: alert.clone(),
                plugin: plugin.clone(),
                reason,
            });
        }
        let (decision, event, action) = plan_one(alert, admitted);
        if let Some(action) = action {
            self.positions.push((self.decisions.len(), self.events.len()));
            self.actions.push(action);
        }
        self.decisions.push(decision);
        self.events.push(event);
    }
}

/// An action planned outside a webhook (approved, or escalated).
pub(super) struct Dispatched {
    pub(super) decision: AlertDecision,
    pub(super) event: EventBody,
    pub(super) action: Option<PendingAction>,
    pub(super) cooldown_keys: Vec<String>,
    /// The claim taken for it, in a cluster.
    pub(super) won: Vec<String>,
}

/// An admitted action, not yet started.
pub(super) struct PendingAction {
    pub(super) plugin: Arc<Plugin>,
    pub(super) alert: Arc<Alert>,
    /// The cooldown (and, in a cluster, the claim) it was admitted under.
    pub(super) cooldown_key: String,
    pub(super) mode: ExecutionMode,
    /// Why it runs in dry-run: whether its effect is judged
    /// (`verify::judged`). A claim that cannot be asked turns a real action
    /// into a dry-run and sets it to `cluster_unavailable`.
    pub(super) dry_run_reason: Option<DryRunReason>,
    pub(super) places: Places,
    pub(super) purpose: Purpose,
    /// For a queued action, its `action_started`, recorded when its turn
    /// comes (with how long it waited).
    pub(super) start: Option<ActionStarted>,
    /// The retry this action serves, if its alert was kept: a failure for
    /// want of the engine keeps it again, counted from the first refusal.
    pub(super) retry: Option<Retry>,
    /// Who sent the webhook it was decided on: a preview's approval names
    /// them as `requested_by`.
    pub(super) requested_by: Option<autoheal_core::event::Actor>,
}

/// The answer, the event and (for an action) what starts, of one admitted verdict.
pub(super) fn plan_one(
    alert: &Arc<Alert>,
    admitted: Admitted,
) -> (AlertDecision, EventBody, Option<PendingAction>) {
    let Admitted {
        verdict,
        places,
        mode,
        dry_run_reason,
        purpose,
        refused_for: _,
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
        deferred_until: None,
    };
    match verdict {
        Verdict::Skip {
            reason,
            detail,
            plugin,
            remaining_sec,
            budget,
            paused,
            repeat_cap,
        } => {
            let mut skip = DecisionSkip {
                plugin: plugin.clone(),
                remaining_sec,
                budget,
                pause_id: paused.as_ref().map(|p| p.id.clone()),
                pause_reason: paused.as_ref().map(|p| p.reason.clone()),
                paused_until: paused.as_ref().map(|p| p.until),
                ..DecisionSkip::new(alert, reason, detail.clone())
            };
            if let Some(reached) = repeat_cap {
                skip.cooldown_key = Some(reached.cooldown_key);
                skip.repeat_cap = Some(reached.cap.to_string());
                skip.repeat_cap_key = Some(reached.key.to_owned());
                skip.repeat_cap_until = Some(reached.until);
            }
            let event = EventBody::DecisionSkip(skip);
            decision.reason = Some(reason);
            decision.detail = Some(detail);
            decision.plugin = plugin;
            decision.remaining_sec = remaining_sec;
            (decision, event, None)
        }
        Verdict::Defer(hold) => {
            decision.decision = Decision::Deferred;
            decision.detail = Some(format!(
                "{} acts only on an alert firing for {}s (firing_for): decided again then",
                hold.plugin, hold.firing_for_sec
            ));
            decision.plugin = Some(hold.plugin.clone());
            decision.deferred_until = Some(hold.until);
            (decision, hold.event(), None)
        }
        Verdict::Act {
            plugin,
            cooldown_key,
            cooldown_sec,
        } => {
            let now = unix_now();
            let subject = ActionSubject::new(alert, &plugin.manifest.name, &plugin.manifest.version);
            let started = ActionStarted {
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
                queued_sec: None,
                status: subject.status,
            };
            decision.decision = match purpose {
                Purpose::Preview { .. } => Decision::Approval,
                Purpose::Act { .. } => Decision::Act,
            };
            decision.plugin = Some(plugin.manifest.name.clone());
            decision.mode = Some(mode);
            let places = places.expect("an admitted action has its places");
            let (event, start) = match &places.turn {
                Turn::Now(_) => (EventBody::ActionStarted(started), None),
                Turn::Queued(waiting) => {
                    decision.decision = Decision::Queued;
                    decision.detail = Some(format!(
                        "queued behind {}: {}",
                        waiting.ahead, waiting.waiting_for
                    ));
                    (
                        EventBody::ActionQueued(queued(alert, &started, waiting)),
                        Some(started),
                    )
                }
            };
            let action = PendingAction {
                plugin,
                alert: alert.clone(),
                cooldown_key,
                mode,
                dry_run_reason,
                places,
                purpose,
                start,
                retry: None,
                requested_by: None,
            };
            (decision, event, Some(action))
        }
    }
}

/// The `action_queued` of an action that waits, from the `action_started`
/// it will record when it runs.
fn queued(alert: &Alert, started: &ActionStarted, waiting: &Waiting) -> ActionQueued {
    ActionQueued {
        ahead: waiting.ahead,
        alert: alert.clone(),
        alertname: started.alertname.clone(),
        cooldown_key: started.cooldown_key.clone(),
        cooldown_sec: started.cooldown_sec,
        cooldown_until: started.cooldown_until,
        dry_run_reason: started.dry_run_reason,
        fingerprint: started.fingerprint.clone(),
        mode: started.mode,
        plugin: started.plugin.clone(),
        plugin_version: started.plugin_version.clone(),
        status: started.status,
        waiting_for: waiting.waiting_for.clone(),
    }
}
