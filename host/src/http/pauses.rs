//! `GET /pauses`, `POST /pauses` and `DELETE /pauses/{id}`: operators'
//! pauses, listed, made and resumed (on a replica, for every replica).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::admin::{MAX_BY_BYTES, bounded};
use crate::remediation::{PauseCommandError, PauseError, Remediator};
use autoheal_api::pauses::{PauseRequest, PausesAnswer, ResumeRequest};

/// The active pauses, the soonest to end first.
pub(super) async fn list(State(remediator): State<Arc<Remediator>>) -> Response {
    Json(PausesAnswer {
        pauses: remediator.pauses(),
    })
    .into_response()
}

/// `POST /pauses`: `{"duration": "2h", "reason": "...", "plugin"?, "matchers"?, "by"?}`.
pub(super) async fn pause(State(remediator): State<Arc<Remediator>>, body: axum::body::Bytes) -> Response {
    let mut request = match serde_json::from_slice::<PauseRequest>(&body) {
        Ok(request) => request,
        Err(e) => {
            return ApiError(
                StatusCode::BAD_REQUEST,
                format!(
                    "invalid request: {e}; expected {{\"duration\": \"2h\", \"reason\": \"why\", \
                     \"plugin\": \"name\", \"matchers\": \"service=\\\"crm\\\"\", \"by\": \"who\"}} \
                     (plugin, matchers and by optional)"
                ),
            )
            .into_response();
        }
    };
    request.by = bounded(request.by, MAX_BY_BYTES);
    match remediator.pause(request).await {
        Ok(pause) => Json(pause).into_response(),
        Err(e) => refused(e),
    }
}

/// `DELETE /pauses/{id}`, with `{"by": "who"}` or no body.
pub(super) async fn resume(
    State(remediator): State<Arc<Remediator>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let request = match body.iter().all(u8::is_ascii_whitespace) {
        true => ResumeRequest::default(),
        false => match serde_json::from_slice::<ResumeRequest>(&body) {
            Ok(request) => request,
            Err(e) => {
                return ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("invalid request: {e}; expected {{\"by\": \"who\"}} or no body"),
                )
                .into_response();
            }
        },
    };
    match remediator.resume(&id, bounded(request.by, MAX_BY_BYTES)).await {
        Ok(pause) => Json(pause).into_response(),
        Err(e) => refused(e),
    }
}

fn refused(error: PauseCommandError) -> Response {
    let status = match &error {
        PauseCommandError::Pause(PauseError::Unknown(_)) => StatusCode::NOT_FOUND,
        PauseCommandError::Pause(_) => StatusCode::BAD_REQUEST,
        PauseCommandError::Audit(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError(status, error.to_string()).into_response()
}
