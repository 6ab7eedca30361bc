//! `GET`/`POST /ack`: silence an alert in Alertmanager.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::Value;

use std::sync::Arc;

use super::{ApiError, query_pairs};
use crate::auth::Principal;
use crate::config::Config;
use crate::silence::{SilenceError, create_silence, parse_matchers, parse_silence_duration};
use autoheal_api::ack::{AckAnswer, AckRequest, AlertmanagerSilence};
use autoheal_core::audit::AuditLog;
use autoheal_core::event::{Ack, EventBody};

/// `GET /ack?labels=...&duration=30m&comment=...` (the original system's form).
pub(super) async fn ack_get(
    State(client): State<reqwest::Client>,
    State(config): State<Arc<Config>>,
    State(audit): State<Arc<AuditLog>>,
    Extension(principal): Extension<Principal>,
    RawQuery(query): RawQuery,
) -> Response {
    let request = query_pairs(query.as_deref()).and_then(|pairs| {
        pairs.expect_only(&["labels", "duration", "comment"])?;
        Ok(AckRequest {
            labels: pairs.one::<String>("labels")?.map(Value::String),
            duration: pairs.one::<String>("duration")?,
            comment: pairs.one::<String>("comment")?,
        })
    });
    match request {
        Ok(request) => ack(&client, &config, &audit, &principal, request).await,
        Err(e) => e.into_response(),
    }
}

/// `POST /ack` with `{"labels": {...} | "matchers", "duration": "2h", "comment": "..."}`.
pub(super) async fn ack_post(
    State(client): State<reqwest::Client>,
    State(config): State<Arc<Config>>,
    State(audit): State<Arc<AuditLog>>,
    Extension(principal): Extension<Principal>,
    body: axum::body::Bytes,
) -> Response {
    match serde_json::from_slice::<AckRequest>(&body) {
        Ok(request) => ack(&client, &config, &audit, &principal, request).await,
        Err(e) => ApiError(StatusCode::BAD_REQUEST, format!("invalid ack request: {e}")).into_response(),
    }
}

async fn ack(
    client: &reqwest::Client,
    config: &Config,
    audit: &AuditLog,
    principal: &Principal,
    request: AckRequest,
) -> Response {
    let bad = |message: String| ApiError(StatusCode::BAD_REQUEST, message).into_response();
    let labels = match request.labels {
        None => {
            return bad("`labels` is required: a JSON object or matchers like alertname=~\"Tcp.*\"".into());
        }
        Some(Value::String(text)) => text,
        Some(object @ Value::Object(_)) => object.to_string(),
        Some(other) => return bad(format!("`labels` must be an object or a string, not {other}")),
    };
    let matchers = match parse_matchers(&labels) {
        Ok(matchers) => matchers,
        Err(e) => return bad(format!("`labels`: {e}")),
    };
    let duration_text = request.duration.unwrap_or_else(|| "30m".into());
    let duration = match parse_silence_duration(&duration_text, config.ack_max_duration) {
        Ok(duration) => duration,
        Err(e) => return bad(format!("`duration`: {e}")),
    };
    let comment = request
        .comment
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| "acknowledged in autoheal".into());

    // Alertmanager's UI says who acked: the verified caller, not the body.
    let created_by = AlertmanagerSilence::created_by(&principal.id);
    match create_silence(
        client,
        &config.alertmanager,
        &matchers,
        duration,
        &comment,
        &created_by,
    )
    .await
    {
        Ok(silence) => {
            let shown: Vec<String> = matchers.iter().map(|m| m.to_string()).collect();
            let alertname = matchers
                .iter()
                .find(|m| m.name == "alertname" && m.is_equal && !m.is_regex)
                .map(|m| m.value.clone());
            let actor = super::actor(principal, None);
            audit.emit(EventBody::Ack(Ack {
                alertname,
                by: actor.by,
                by_comment: actor.by_comment,
                by_kind: actor.by_kind,
                by_name: actor.by_name,
                comment,
                duration: duration_text.clone(),
                ends_at: silence.ends_at.clone(),
                labels: shown,
                silence_id: silence.silence_id.clone(),
                silence_url: silence.url.clone(),
            }));
            Json(AckAnswer {
                silence_id: silence.silence_id,
                url: silence.url,
                matchers: matchers.into_iter().map(Into::into).collect(),
                starts_at: silence.starts_at,
                ends_at: silence.ends_at,
                duration: duration_text,
            })
            .into_response()
        }
        Err(e @ (SilenceError::Unreachable { .. } | SilenceError::Refused { .. })) => {
            ApiError(StatusCode::BAD_GATEWAY, e.to_string()).into_response()
        }
    }
}
