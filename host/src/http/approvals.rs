//! `GET /approvals` and `POST /approvals/{id}/approve|deny`: the actions
//! that wait for an operator, and the operator's answer.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use super::admin::{MAX_BY_BYTES, bounded};
use crate::engine::{ApprovalError, Engine, NotPending};
use autoheal_core::util::unix_now;

/// Longest comment kept.
const MAX_COMMENT_BYTES: usize = 1024;

/// The body of an answer; it may be empty.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    by: Option<String>,
    comment: Option<String>,
}

/// What waits, oldest first, with each preview.
pub(super) async fn list(State(engine): State<Arc<Engine>>) -> Response {
    let now = unix_now();
    let pending: Vec<_> = engine
        .pending_approvals()
        .into_iter()
        .map(|p| {
            let mut value = serde_json::to_value(&p).unwrap_or_default();
            value["expires_in_sec"] = json!((p.request.expires_at - now).max(0.0).round());
            value
        })
        .collect();
    Json(json!({ "pending": pending })).into_response()
}

/// `POST /approvals/{id}/approve`.
pub(super) async fn approve(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    answer(engine, id, true, body).await
}

/// `POST /approvals/{id}/deny`.
pub(super) async fn deny(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    answer(engine, id, false, body).await
}

async fn answer(engine: Arc<Engine>, id: String, grant: bool, body: axum::body::Bytes) -> Response {
    let request = match body.iter().all(u8::is_ascii_whitespace) {
        true => Answer::default(),
        false => {
            match serde_json::from_slice::<Answer>(&body) {
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
    match engine.decide_approval(&id, grant, by, comment).await {
        Ok(decision) => Json(json!({
            "approval": id,
            "outcome": if grant { "granted" } else { "denied" },
            "decision": decision,
        }))
        .into_response(),
        Err(ApprovalError::NotPending(NotPending::Unknown)) => ApiError(
            StatusCode::NOT_FOUND,
            format!("no approval {id:?} is pending (GET /approvals lists them)"),
        )
        .into_response(),
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
