//! `GET /pauses`, `POST /pauses` and `DELETE /pauses/{id}`: operators'
//! pauses, listed, made and resumed (on a replica, for every replica).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::{ApiError, AppState, guard};
use crate::auth::{Principal, Role};
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
/// A pause of one plugin needs an operator of that plugin; any other, an
/// operator of every plugin.
pub(super) async fn pause(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: axum::body::Bytes,
) -> Response {
    let remediator = &state.host.remediator;
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
    let plugin = request
        .plugin
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    if let Err(denied) = principal.may(Role::Operator, plugin.as_deref()) {
        return guard::forbid(
            &state,
            ("POST", "/pauses"),
            Role::Operator,
            plugin.as_deref(),
            &principal,
            denied,
        );
    }
    let actor = super::actor(&principal, request.by.take());
    match remediator.pause(request, actor).await {
        Ok(pause) => Json(pause).into_response(),
        Err(e) => refused(e),
    }
}

/// `DELETE /pauses/{id}`, with `{"by": "a comment"}` or no body. Ending
/// a pause of one plugin needs an operator of that plugin; any other, an
/// operator of every plugin.
pub(super) async fn resume(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let remediator = &state.host.remediator;
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
    // An unknown id is the remediator's 404, whoever asks.
    if let Some(pause) = remediator.pauses().into_iter().find(|p| p.id == id)
        && let Err(denied) = principal.may(Role::Operator, pause.plugin.as_deref())
    {
        let path = format!("/pauses/{id}");
        return guard::forbid(
            &state,
            ("DELETE", &path),
            Role::Operator,
            pause.plugin.as_deref(),
            &principal,
            denied,
        );
    }
    match remediator.resume(&id, super::actor(&principal, request.by)).await {
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
