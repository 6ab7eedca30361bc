//! In a cluster, this replica's pending approvals are published for every
//! replica to list, and answers given on other replicas are applied here
//! (see [`crate::cluster`]'s approvals). Once a tick: publish what waits
//! here and is not published (the oldest, up to `MAX_PUBLISHED_APPROVALS`),
//! withdraw what is published and has ended, apply the answers written for
//! what waits here.

use std::collections::HashSet;
use std::sync::Arc;

use autoheal_core::event::{EventBody, HostWarning, Warning};

use super::{ApprovalError, Engine};
use crate::cluster::FoundAnswer;
use crate::cluster::MAX_PUBLISHED_APPROVALS;

impl Engine {
    /// Brings the cluster's view of this replica's approvals up to date and
    /// applies the answers other replicas took.
    pub(super) async fn share_approvals(self: &Arc<Self>) {
        // While etcd does not answer this would hold up the tick (approval
        // expiry, verify deadlines) by a timeout each second; the cluster's
        // own once-a-second read says when it is back.
        let Some(cluster) = self.cluster.clone().filter(|c| c.is_available()) else {
            return;
        };
        let Ok(shared) = cluster.shared_approvals().await else {
            return;
        };
        let published: HashSet<String> = shared
            .into_iter()
            .filter(|(_, approval)| approval.replica == cluster.replica())
            .map(|(id, _)| id)
            .collect();
        let pending = self.pending_approvals();
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
            return;
        };
        for (id, found) in answers {
            let answer = match found {
                FoundAnswer::Proven(answer) => answer,
                // Whoever wrote it could write to etcd but does not hold the
                // cluster secret: recorded and removed (which also lets a
                // replica's genuine answer be written), never applied.
                FoundAnswer::Refused { reason, revision } => {
                    tracing::warn!(approval = %id, reason, "an answer in etcd without a valid proof was refused");
                    self.audit.emit(EventBody::HostWarning(HostWarning {
                        detail: Some(format!(
                            "an answer to approval {id} in etcd was refused ({reason}): not written by a replica holding the cluster secret; the approval still waits"
                        )),
                        ..HostWarning::bare(Warning::ClusterAnswerRefused)
                    }));
                    let _ = cluster.discard_answer(&id, revision).await;
                    continue;
                }
            };
            let by = Some(format!(
                "{} (via {})",
                answer.by.as_deref().unwrap_or("operator"),
                answer.via
            ));
            match self.decide_approval(&id, answer.grant, by, answer.comment).await {
                Ok(_) => {
                    tracing::info!(approval = %id, via = %answer.via, grant = answer.grant, "an approval answered on another replica");
                    let _ = cluster.withdraw_approval(&id).await;
                }
                // The answer ended it without running anything (too late,
                // or the plugin is not the version previewed).
                Err(e @ (ApprovalError::Expired { .. } | ApprovalError::Stale(_))) => {
                    tracing::warn!(approval = %id, via = %answer.via, error = %e, "an answer from another replica was refused");
                    let _ = cluster.withdraw_approval(&id).await;
                }
                // Ended here meanwhile, or not recorded: the next tick sees it again.
                Err(e) => {
                    tracing::warn!(approval = %id, error = %e, "an answer from another replica was not applied")
                }
            }
        }
    }
}
