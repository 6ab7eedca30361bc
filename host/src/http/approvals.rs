//! `GET /approvals` and `POST /approvals/{id}/approve|deny`: the actions
//! that wait for an operator, and the operator's answer. On a replica, the
//! list has every replica's approvals, and an answer to another replica's
//! is forwarded to it (202).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::admin::{MAX_BY_BYTES, bounded};
use crate::app::Host;
use crate::auth::{Principal, Role};
use crate::cluster::{Cluster, Forwarded};
use crate::remediation::{ApprovalDecided, ApprovalError, NotPending, Remediator, approval_policy};
use autoheal_api::approvals::{
    ApprovalAnswer, ApprovalAnswerRequest, ApprovalListing, ApprovalOutcome, ApprovalsAnswer,
};
use autoheal_core::util::unix_now;
use axum::Extension;

/// Longest comment kept.
const MAX_COMMENT_BYTES: usize = 1024;

/// What waits, oldest first, with each preview (and, on a replica, the
/// `replica` it waits on; the other replicas' as they last published them).
pub(super) async fn list(State(remediator): State<Arc<Remediator>>, State(host): State<Host>) -> Response {
    let now = unix_now();
    let here = host.cluster.as_ref().map(|c| c.replica().to_owned());
    let mut pending: Vec<ApprovalListing> = remediator
        .pending_approvals()
        .iter()
        .map(|p| p.listing(here.clone()))
        .collect();
    if let Some(cluster) = &host.cluster {
        // Unreachable: this replica's own still list.
        if let Ok(shared) = cluster.shared_approvals().await {
            pending.extend(
                shared
                    .into_iter()
                    .filter(|(_, approval)| Some(&approval.replica) != here.as_ref())
                    .map(|(_, approval)| approval.listing),
            );
        }
    }
    for listing in &mut pending {
        listing.expires_in_sec = Some((listing.request.expires_at - now).max(0.0).round());
    }
    pending.sort_by(|a, b| a.requested_at.total_cmp(&b.requested_at));
    Json(ApprovalsAnswer { pending }).into_response()
}

/// `POST /approvals/{id}/approve`.
pub(super) async fn approve(
    State(remediator): State<Arc<Remediator>>,
    State(host): State<Host>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(starting) = super::starting(&host) {
        return starting;
    }
    answer(remediator, host.cluster, &principal, id, true, body).await
}

/// `POST /approvals/{id}/deny`.
pub(super) async fn deny(
    State(remediator): State<Arc<Remediator>>,
    State(host): State<Host>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(starting) = super::starting(&host) {
        return starting;
    }
    answer(remediator, host.cluster, &principal, id, false, body).await
}

/// The answer of `principal` (who answers is always the verified caller;
/// the body's `by` is only a comment).
async fn answer(
    remediator: Arc<Remediator>,
    cluster: Option<Arc<Cluster>>,
    principal: &Principal,
    id: String,
    grant: bool,
    body: axum::body::Bytes,
) -> Response {
    let request = match body.iter().all(u8::is_ascii_whitespace) {
        true => ApprovalAnswerRequest::default(),
        false => {
            match serde_json::from_slice::<ApprovalAnswerRequest>(&body) {
                Ok(request) => request,
                Err(e) => {
                    return ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("invalid request: {e}; expected {{\"by\": \"who\", \"comment\": \"why\"}} or no body"),
                )
                .into_response();
                }
            }
        }
    };
    let by = bounded(request.by, MAX_BY_BYTES);
    let comment = bounded(request.comment, MAX_COMMENT_BYTES);
    let (by_again, comment_again) = (by.clone(), comment.clone());
    match remediator.decide_approval(&id, grant, principal, by, comment).await {
        Ok(ApprovalDecided::Granted(decision)) => Json(ApprovalAnswer {
            outcome: ApprovalOutcome::Granted,
            decision: Some(Some(decision)),
            ..ApprovalAnswer::new(id)
        })
        .into_response(),
        Ok(ApprovalDecided::Denied) => Json(ApprovalAnswer {
            outcome: ApprovalOutcome::Denied,
            decision: Some(None),
            ..ApprovalAnswer::new(id)
        })
        .into_response(),
        Ok(ApprovalDecided::Recorded { approvals, required }) => Json(ApprovalAnswer {
            outcome: ApprovalOutcome::Recorded,
            approvals: Some(approvals),
            approvals_required: Some(required),
            detail: Some(format!(
                "{approvals} of {required} approvals recorded; it runs once {required} different approvers have granted, at least one of them not who sent the alert"
            )),
            ..ApprovalAnswer::new(id)
        })
        .into_response(),
        Err(ApprovalError::NotPending(NotPending::Unknown)) => match cluster {
            Some(cluster) => forward(&cluster, principal, &id, grant, by_again, comment_again).await,
            None => not_pending(&id),
        },
        Err(ApprovalError::Forbidden(message)) => ApiError(StatusCode::FORBIDDEN, message).into_response(),
        Err(e @ ApprovalError::AlreadyApproved(_)) => {
            ApiError(StatusCode::CONFLICT, format!("approval {id:?}: {e}")).into_response()
        }
        // Ended just now, by this answer: it came too late, or what was
        // previewed is gone. The outcome names which, for scripts.
        Err(e @ (ApprovalError::Expired { .. } | ApprovalError::Stale(_))) => {
            let outcome = match e {
                ApprovalError::Stale(_) => ApprovalOutcome::ApprovalStale,
                _ => ApprovalOutcome::ApprovalExpired,
            };
            (
                StatusCode::CONFLICT,
                Json(ApprovalAnswer {
                    outcome,
                    error: Some(format!("approval {id:?} refused: {e}")),
                    ..ApprovalAnswer::new(id)
                }),
            )
                .into_response()
        }
        Err(ApprovalError::NotPending(NotPending::Ended(kind))) => ApiError(
            StatusCode::CONFLICT,
            format!("approval {id:?} has already ended: {}", kind.as_str()),
        )
        .into_response(),
        Err(e @ ApprovalError::Audit(_)) => {
            ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
    }
}

fn not_pending(id: &str) -> Response {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no approval {id:?} is pending (GET /approvals lists them)"),
    )
    .into_response()
}

/// Another replica's approval: the answer is written for it (202), once
/// `principal` holds the approver role on its plugin and matches its
/// `[policy] approvers` as published (the owner checks the policy again,
/// and counts).
async fn forward(
    cluster: &Cluster,
    principal: &Principal,
    id: &str,
    grant: bool,
    by: Option<String>,
    comment: Option<String>,
) -> Response {
    let published = match cluster.shared_approvals().await {
        Ok(shared) => shared.into_iter().find(|(shared_id, _)| shared_id == id),
        Err(e) => {
            return ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("approval {id:?} is not pending here, and the cluster could not be asked: {e}"),
            )
            .into_response();
        }
    };
    let Some((_, shared)) = published else {
        return not_pending(id);
    };
    let request = &shared.listing.request;
    if let Err(denied) = principal.may(Role::Approver, Some(&request.plugin)) {
        return ApiError(StatusCode::FORBIDDEN, denied.message).into_response();
    }
    // A listing cut to fit etcd may not hold the whole policy, or every
    // grant: then the owner alone judges (it always judges again).
    let whole = !shared.listing.truncated;
    if let (true, Err(refused)) = (whole, approval_policy::eligible(principal, request)) {
        return ApiError(StatusCode::FORBIDDEN, refused.0).into_response();
    }
    let me = approval_policy::actor(principal);
    if whole
        && shared
            .listing
            .approved_by
            .iter()
            .any(|a| a.id == me.id && a.kind == me.kind)
    {
        return ApiError(
            StatusCode::CONFLICT,
            format!("approval {id:?}: {}", approval_policy::AlreadyApproved),
        )
        .into_response();
    }
    let who = approval_policy::answer_principal(principal);
    match cluster.answer_approval(id, grant, who, by, comment).await {
        Ok(Forwarded::To(replica)) => (
            StatusCode::ACCEPTED,
            Json(ApprovalAnswer {
                outcome: ApprovalOutcome::Forwarded,
                detail: Some(format!(
                    "approval {id} waits on replica {replica}, which applies this answer within a second"
                )),
                replica: Some(replica),
                ..ApprovalAnswer::new(id.to_owned())
            }),
        )
            .into_response(),
        Ok(Forwarded::AlreadyAnswered) => ApiError(
            StatusCode::CONFLICT,
            format!("approval {id:?} was already answered by you (on another replica); another approver must answer"),
        )
        .into_response(),
        Ok(Forwarded::Unknown) => not_pending(id),
        Err(e) => ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("approval {id:?} is not pending here, and the cluster could not be asked: {e}"),
        )
        .into_response(),
    }
}
