//! In a cluster, an admitted action runs only on the replica that takes
//! its claim (see [`crate::cluster`]). This file asks for the claims of
//! admitted actions and rewrites what was planned by the answers: a claim
//! held by another replica becomes `decision_skip` `claimed`; a cluster
//! that cannot be asked turns a real action into a dry-run
//! (`cluster_unavailable`) whose cooldown is given back and whose alert is
//! kept (`Settled::unavailable`), so that it is decided again as soon as
//! the cluster is back; the shared switches read with the claim overrule
//! this replica's copy.

use std::sync::Arc;

use futures_util::future::join_all;

use autoheal_core::event::{ActionQueued, ActionStarted, DecisionSkip, EventBody, RetryReason, SkipReason};
use autoheal_core::mode::{DryRunReason, ExecutionMode};

use super::admit::{Admitter, Purpose};
use super::plan::{Dispatched, PendingAction, Plan, RefusedForNow};
use crate::cluster::{Claim, Claimed, Cluster, ClusterError};
use autoheal_api::alert::{AlertDecision, Decision};

/// An action planned with its decision and its `action_started`.
struct Planned<'a> {
    decision: &'a mut AlertDecision,
    event: &'a mut EventBody,
    action: PendingAction,
}

/// What settling the claims left: the actions to start, and the claims
/// won (to give back if the plan is not recorded).
#[derive(Default)]
pub(super) struct Settled {
    pub(super) actions: Vec<PendingAction>,
    pub(super) won: Vec<String>,
    /// Real actions turned to dry-runs for want of the cluster: their
    /// alerts are kept and decided again once it answers.
    pub(super) unavailable: Vec<RefusedForNow>,
}

/// The claims of a webhook plan's actions, applied to its decisions and
/// events; the actions are taken out of the plan into the answer.
pub(super) async fn settle_plan(
    cluster: Option<&Arc<Cluster>>,
    admitter: &Admitter,
    plan: &mut Plan,
) -> Settled {
    let actions = std::mem::take(&mut plan.actions);
    let positions = std::mem::take(&mut plan.positions);
    // Each action's own decision and event, borrowed apart.
    let mut decisions: Vec<Option<&mut AlertDecision>> = plan.decisions.iter_mut().map(Some).collect();
    let mut events: Vec<Option<&mut EventBody>> = plan.events.iter_mut().map(Some).collect();
    let planned = actions
        .into_iter()
        .zip(positions)
        .map(|(action, (d, e))| Planned {
            decision: decisions[d].take().expect("one action per decision"),
            event: events[e].take().expect("one action per event"),
            action,
        })
        .collect();
    settle(cluster, admitter, planned).await
}

/// The claim of an action dispatched outside a webhook, applied to it.
pub(super) async fn settle_dispatched(
    cluster: Option<&Arc<Cluster>>,
    admitter: &Admitter,
    dispatched: &mut Dispatched,
) {
    let Some(action) = dispatched.action.take() else {
        return;
    };
    let planned = Planned {
        decision: &mut dispatched.decision,
        event: &mut dispatched.event,
        action,
    };
    let settled = settle(cluster, admitter, vec![planned]).await;
    dispatched.action = settled.actions.into_iter().next();
    dispatched.won = settled.won;
}

/// Gives back the claims `won`, in the background: what they were taken
/// for was not recorded, so the retry is decided afresh.
pub(super) fn give_back(cluster: Option<&Arc<Cluster>>, won: Vec<String>) {
    let Some(cluster) = cluster.cloned() else {
        return;
    };
    if won.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for key in won {
            cluster.release(&key).await;
        }
    });
}

/// Asks for the claims of `planned` at once and applies the answers.
/// Without a cluster every action stays as planned.
async fn settle(cluster: Option<&Arc<Cluster>>, admitter: &Admitter, planned: Vec<Planned<'_>>) -> Settled {
    let mut settled = Settled::default();
    let Some(cluster) = cluster else {
        settled.actions = planned.into_iter().map(|p| p.action).collect();
        return settled;
    };
    let asks: Vec<(String, String, u64)> = planned
        .iter()
        .map(|p| match &*p.event {
            EventBody::ActionStarted(started) => (
                started.cooldown_key.clone(),
                started.plugin.clone(),
                started.cooldown_sec,
            ),
            EventBody::ActionQueued(queued) => (
                queued.cooldown_key.clone(),
                queued.plugin.clone(),
                queued.cooldown_sec,
            ),
            _ => unreachable!("an admitted action is planned with its action_started or action_queued"),
        })
        .collect();
    let answers = join_all(asks.iter().zip(&planned).map(|((key, plugin, ttl), p)| {
        cluster.claim_counting(key, plugin, *ttl, p.action.places.counting())
    }))
    .await;
    for (planned, ((key, _, _), answer)) in planned.into_iter().zip(asks.into_iter().zip(answers)) {
        let won = matches!(
            answer,
            Ok(Claimed {
                claim: Claim::Won,
                ..
            })
        );
        // An action that would have run for real (or asked an operator)
        // runs in dry-run for want of the cluster: its alert is kept.
        if answer.is_err()
            && (planned.action.mode == ExecutionMode::Real
                || matches!(planned.action.purpose, Purpose::Preview { .. }))
        {
            settled.unavailable.push(RefusedForNow {
                alert: planned.action.alert.clone(),
                plugin: planned.action.plugin.manifest.name.clone(),
                reason: RetryReason::ClusterUnavailable,
            });
        }
        if let Some(action) = apply_claim(cluster, admitter, answer, planned, &key) {
            settled.actions.push(action);
            if won {
                settled.won.push(key);
            }
        }
    }
    settled
}

/// One claim's answer applied to its planned action: the action to
/// start, or `None` when another replica acts.
fn apply_claim(
    cluster: &Arc<Cluster>,
    admitter: &Admitter,
    answer: Result<Claimed, ClusterError>,
    planned: Planned<'_>,
    cooldown_key: &str,
) -> Option<PendingAction> {
    let Planned {
        decision,
        event,
        mut action,
    } = planned;
    match answer {
        Ok(Claimed {
            claim: Claim::Held { by },
            ..
        }) if cluster.replica() != by => {
            let plugin = action.plugin.manifest.name.clone();
            let detail =
                format!("replica {by} holds the claim on {plugin}'s action for this alert and acts on it");
            *event = EventBody::DecisionSkip(DecisionSkip {
                claimed_by: Some(by),
                plugin: Some(plugin.clone()),
                ..DecisionSkip::new(&action.alert, SkipReason::Claimed, detail.clone())
            });
            decision.decision = Decision::Skip;
            decision.reason = Some(SkipReason::Claimed);
            decision.detail = Some(detail);
            decision.mode = None;
            // The holder counts it toward the repeat caps, not this replica.
            action.places.uncount_repeat();
            // Dropping the action frees its pending slot and budget.
            None
        }
        // Won, or held by this replica already (an approved action
        // inside the claim its preview took).
        Ok(Claimed { switches, .. }) => {
            if let Some(shared) = switches {
                let (mode, reason) = ExecutionMode::from_switches(shared.enabled, shared.dry_run);
                if mode == ExecutionMode::DryRun && action.mode == ExecutionMode::Real {
                    // Its count was written with the claim: taken out again.
                    if let Some(at) = downgrade(decision, event, &mut action, reason) {
                        uncount_in_background(cluster, &action.cooldown_key, at);
                    }
                }
            }
            Some(action)
        }
        Err(e) => {
            let preview = matches!(action.purpose, Purpose::Preview { .. });
            if action.mode == ExecutionMode::Real || preview {
                tracing::warn!(plugin = %action.plugin.manifest.name, error = %e, "no claim: the action runs in dry-run");
                if preview {
                    // An approval nobody could claim would be answered
                    // on this replica alone: it is not asked for.
                    action.purpose = Purpose::Act { chain: None };
                    decision.decision = Decision::Act;
                }
                // The claim's transaction failed: no count was written.
                downgrade(
                    decision,
                    event,
                    &mut action,
                    Some(DryRunReason::ClusterUnavailable),
                );
                // Decided afresh once the cluster is back.
                admitter.forget_cooldowns(&[cooldown_key.to_owned()]);
            }
            Some(action)
        }
    }
}

/// Takes a counted action out of the replicas' repeat caps, in the background.
pub(super) fn uncount_in_background(cluster: &Arc<Cluster>, cooldown_key: &str, at: f64) {
    let (cluster, key) = (cluster.clone(), cooldown_key.to_owned());
    tokio::spawn(async move { cluster.uncount(&key, at).await });
}

/// A real action becomes a dry-run, for `reason`; it no longer spends a
/// budget nor counts toward a repeat cap. Returns when it had been counted.
fn downgrade(
    decision: &mut AlertDecision,
    event: &mut EventBody,
    action: &mut PendingAction,
    reason: Option<DryRunReason>,
) -> Option<f64> {
    action.mode = ExecutionMode::DryRun;
    action.dry_run_reason = reason;
    let counted = action.places.release_budget();
    decision.mode = Some(ExecutionMode::DryRun);
    let (mode, dry_run_reason) = match event {
        EventBody::ActionStarted(ActionStarted {
            mode, dry_run_reason, ..
        })
        | EventBody::ActionQueued(ActionQueued {
            mode, dry_run_reason, ..
        }) => (mode, dry_run_reason),
        _ => return counted,
    };
    *mode = ExecutionMode::DryRun;
    *dry_run_reason = reason;
    if let Some(start) = &mut action.start {
        start.mode = ExecutionMode::DryRun;
        start.dry_run_reason = reason;
    }
    counted
}
