//! In a cluster, this replica's pending approvals are published for every
//! replica to list, and answers given on other replicas are applied here
//! (see [`crate::cluster`]'s approvals). Once a tick: publish what waits
//! here and is not published (the oldest, up to `MAX_PUBLISHED_APPROVALS`),
//! withdraw what is published and has ended, and collect the answers
//! written for what waits here; the caller applies each as an operator's
//! answer and reports how it went with [`answer_applied`].

use std::collections::HashSet;

use autoheal_core::audit::AuditLog;
use autoheal_core::event::{EventBody, HostWarning, Warning};

use super::ApprovalDecided;
use super::approval_flow::{ApprovalError, ApprovalFlow};
use crate::auth::{Grant, Plugins, Principal, PrincipalKind, Role, Scope};
use crate::cluster::{Cluster, FoundAnswer, MAX_PUBLISHED_APPROVALS, RemoteAnswer};

/// Brings the cluster's view of this replica's approvals up to date and
/// returns the answers written for them (proven or not: see [`refuse`]).
pub(super) async fn exchange(cluster: &Cluster, approvals: &ApprovalFlow) -> Vec<(String, FoundAnswer)> {
    let Ok(shared) = cluster.shared_approvals().await else {
        return Vec::new();
    };
    let mine: Vec<_> = shared
        .into_iter()
        .filter(|(_, approval)| approval.replica == cluster.replica())
        .collect();
    let published: HashSet<String> = mine.iter().map(|(id, _)| id.clone()).collect();
    let pending = approvals.pending();
    // A grant recorded since it was published: published again, so that
    // every replica lists who has approved.
    for approval in &pending {
        let stale = mine.iter().any(|(id, shared)| {
            id == &approval.request.approval && shared.listing.approved_by.len() != approval.approved_by.len()
        });
        if stale {
            let listing = approval.listing(Some(cluster.replica().to_owned()));
            let _ = cluster
                .publish_approval(&approval.request.approval, listing, approval.request.expires_at)
                .await;
        }
    }
    let waiting: HashSet<String> = pending.iter().map(|p| p.request.approval.clone()).collect();
    for ended in published.difference(&waiting) {
        let _ = cluster.withdraw_approval(ended).await;
    }
    // The oldest, up to the bound: the rest wait here, listed and
    // answered on this replica, and are published as places free up.
    let room = MAX_PUBLISHED_APPROVALS.saturating_sub(published.intersection(&waiting).count());
    for approval in pending
        .iter()
        .filter(|p| !published.contains(&p.request.approval))
        .take(room)
    {
        let listing = approval.listing(Some(cluster.replica().to_owned()));
        let _ = cluster
            .publish_approval(&approval.request.approval, listing, approval.request.expires_at)
            .await;
    }
    let ids: Vec<String> = waiting.into_iter().collect();
    let Ok(answers) = cluster.answers_for(&ids).await else {
        return Vec::new();
    };
    answers
}

/// An answer in etcd without a valid proof (`reason`): whoever wrote it
/// could write to etcd but does not hold the cluster secret. It is
/// recorded and removed at its `revision` (which also lets a replica's
/// genuine answer be written), never applied.
pub(super) async fn refuse(
    cluster: &Cluster,
    audit: &AuditLog,
    id: &str,
    reason: &str,
    key: &str,
    revision: i64,
) {
    tracing::warn!(approval = %id, reason, "an answer in etcd without a valid proof was refused");
    audit.emit(EventBody::HostWarning(HostWarning {
        detail: Some(format!(
            "an answer to approval {id} in etcd was refused ({reason}): not written by a replica holding the cluster secret; the approval still waits"
        )),
        ..HostWarning::bare(Warning::ClusterAnswerRefused)
    }));
    let _ = cluster.discard_answer(key, revision).await;
}

/// Who gave a forwarded answer, as the replica it was given to verified
/// them. The approver role was checked there; the owner checks the plugin's
/// `[policy] approvers` and counts. An answer from a replica older than
/// principals came with the shared operator token.
pub(super) fn principal_of(answer: &RemoteAnswer) -> Principal {
    let Some(p) = &answer.principal else {
        return Principal::shared(Scope::Operator, false);
    };
    let kind = match p.kind.as_str() {
        "person" => PrincipalKind::Person,
        "token" => PrincipalKind::Token,
        "shared_token" => PrincipalKind::SharedToken,
        _ => PrincipalKind::Anonymous,
    };
    Principal {
        kind,
        id: p.id.clone(),
        name: p.name.clone(),
        groups: p.groups.clone(),
        grants: vec![Grant {
            role: Role::Approver,
            plugins: Plugins::All,
            rule: format!("the approver role, checked on replica {}", answer.via),
        }],
    }
}

/// What the caller typed as `by`, and the replica the answer was given to.
pub(super) fn by_comment(answer: &RemoteAnswer) -> Option<String> {
    Some(format!(
        "{} (via {})",
        answer.by.as_deref().unwrap_or("-"),
        answer.via
    ))
}

/// An answer from another replica was applied here with `result`: once it
/// ended the approval (run, denied, or refused as too late or stale) it is
/// withdrawn from the cluster; otherwise the next tick sees it again.
pub(super) async fn answer_applied(
    cluster: &Cluster,
    audit: &AuditLog,
    id: &str,
    (answer, key, revision): (&RemoteAnswer, &str, i64),
    result: &Result<ApprovalDecided, ApprovalError>,
) {
    match result {
        // One grant of several: it waits for the others (and the
        // published listing names who granted at the next tick).
        Ok(ApprovalDecided::Recorded { .. }) => {
            tracing::info!(approval = %id, via = %answer.via, "a grant given on another replica recorded");
            let _ = cluster.discard_answer(key, revision).await;
        }
        // Not this principal's to give, or given twice: never applied. The
        // person was answered 202 on the other replica, so the refusal is
        // recorded here, where the console and the trail show it.
        Err(e @ (ApprovalError::Forbidden(_) | ApprovalError::AlreadyApproved(_))) => {
            tracing::warn!(approval = %id, via = %answer.via, error = %e, "an answer from another replica was refused");
            let who = principal_of(answer).id;
            audit.emit(EventBody::HostWarning(HostWarning {
                detail: Some(format!(
                    "an answer to approval {id} given on replica {} by {who} was refused here: {e}; the approval still waits",
                    answer.via
                )),
                ..HostWarning::bare(Warning::ClusterAnswerRefused)
            }));
            let _ = cluster.discard_answer(key, revision).await;
        }
        Ok(_) => {
            tracing::info!(approval = %id, via = %answer.via, grant = answer.grant, "an approval answered on another replica");
            let _ = cluster.withdraw_approval(id).await;
        }
        // The answer ended it without running anything (too late,
        // or the plugin is not the version previewed).
        Err(e @ (ApprovalError::Expired { .. } | ApprovalError::Stale(_))) => {
            tracing::warn!(approval = %id, via = %answer.via, error = %e, "an answer from another replica was refused");
            let _ = cluster.withdraw_approval(id).await;
        }
        // Ended here meanwhile, or not recorded: the next tick sees it again.
        Err(e) => {
            tracing::warn!(approval = %id, error = %e, "an answer from another replica was not applied")
        }
    }
}
