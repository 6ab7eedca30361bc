//! The HTTP surface. `router(engine)` builds the whole app so that tests can
//! drive it in-process with `tower::ServiceExt::oneshot`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit::{AuditFilter, read_tail};
use crate::engine::{Engine, plugin_summary};
use crate::event::{EventKind, NewEvent};
use crate::webhook::WebhookPayload;

/// Default and largest `n` of `GET /audit`.
pub const AUDIT_DEFAULT_N: usize = 200;
pub const AUDIT_MAX_N: usize = 5000;
/// How long `GET /` waits for the container engine's version.
const ENGINE_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/", get(status))
        .route("/alert", post(alert))
        .route("/audit", get(audit))
        .with_state(engine)
}

/// A JSON error: `{"error": "..."}` with a status.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

async fn status(State(engine): State<Arc<Engine>>) -> Json<Value> {
    let config = engine.config();
    let plugins = engine.plugins();
    let (mode, dry_run_reason) = engine.mode();
    let containers = engine.containers();
    let probe = tokio::time::timeout(ENGINE_PROBE_TIMEOUT, containers.version()).await;
    let container_engine = match probe {
        Ok(Ok(version)) => json!({ "address": containers.describe(), "reachable": true, "version": version }),
        Ok(Err(e)) => json!({ "address": containers.describe(), "reachable": false, "error": e.to_string() }),
        Err(_) => json!({
            "address": containers.describe(),
            "reachable": false,
            "error": format!("no answer within {ENGINE_PROBE_TIMEOUT:?}"),
        }),
    };
    let cooldowns: Vec<Value> = engine
        .active_cooldowns()
        .into_iter()
        .map(|(key, left)| json!({ "key": key, "remaining_sec": left.ceil() as u64 }))
        .collect();
    Json(json!({
        "service": "autoheal",
        "version": env!("CARGO_PKG_VERSION"),
        "enabled": config.enabled,
        "dry_run": config.dry_run,
        "mode": mode,
        "dry_run_reason": dry_run_reason,
        "audit_path": engine.audit().path(),
        "plugins_dir": config.plugins_dir,
        "plugins": plugins.iter().map(|p| plugin_summary(p)).collect::<Vec<_>>(),
        "plugins_rejected": plugins
            .rejections()
            .iter()
            .map(|r| json!({ "file": r.file, "reason": r.reason }))
            .collect::<Vec<_>>(),
        "container_engine": container_engine,
        "allocator": engine.runtime().allocator(),
        "cooldowns": cooldowns,
    }))
}

/// The Alertmanager webhook. Bad input is a 4xx (never a 5xx, which
/// Alertmanager would retry forever) and is audited as `webhook_rejected`.
async fn alert(State(engine): State<Arc<Engine>>, body: Body) -> Response {
    let limit = engine.config().max_body_bytes;
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return reject(
                &engine,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body is larger than {limit} bytes"),
            );
        }
        Err(e) => {
            return reject(
                &engine,
                StatusCode::BAD_REQUEST,
                format!("could not read body: {e}"),
            );
        }
    };
    let payload: WebhookPayload = match serde_json::from_slice(&bytes) {
        Ok(payload) => payload,
        Err(e) if e.is_data() => {
            return reject(
                &engine,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("invalid webhook payload: {e}"),
            );
        }
        Err(e) => return reject(&engine, StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")),
    };

    let received = NewEvent::new(EventKind::WebhookReceived)
        .with("alerts", payload.alerts.len())
        .with("receiver", &payload.receiver)
        .with("status", &payload.status)
        .with("group_key", &payload.group_key)
        .with("truncated_alerts", payload.truncated_alerts.filter(|n| *n > 0));
    // Acknowledge only what the trail holds; if the disk fails, still act
    // (the writer has logged why) rather than drop the alert.
    if let Err(e) = engine.audit().emit_durable(received).await {
        tracing::error!(error = %e, "webhook_received not persisted");
    }
    let decisions = engine.process(payload.alerts);
    Json(json!({ "received": decisions.len(), "decisions": decisions })).into_response()
}

fn reject(engine: &Engine, status: StatusCode, error: String) -> Response {
    engine.audit().emit(
        NewEvent::new(EventKind::WebhookRejected)
            .with("status", status.as_u16())
            .with("error", &error),
    );
    ApiError(status, error).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    n: Option<usize>,
    /// One kind or several, comma-separated.
    kind: Option<String>,
    alertname: Option<String>,
    since: Option<f64>,
    contains: Option<String>,
}

async fn audit(
    State(engine): State<Arc<Engine>>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(e) => return ApiError(StatusCode::BAD_REQUEST, e.body_text()).into_response(),
    };
    let n = query.n.unwrap_or(AUDIT_DEFAULT_N);
    if n > AUDIT_MAX_N {
        return ApiError(
            StatusCode::BAD_REQUEST,
            format!("n must be at most {AUDIT_MAX_N}"),
        )
        .into_response();
    }
    let filter = AuditFilter {
        kinds: query
            .kind
            .iter()
            .flat_map(|k| k.split(','))
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect(),
        alertname: query.alertname.filter(|a| !a.is_empty()),
        since: query.since,
        contains: query.contains.filter(|c| !c.is_empty()),
    };
    let path = engine.audit().path().to_owned();
    match tokio::task::spawn_blocking(move || read_tail(&path, &filter, n)).await {
        Ok(Ok(events)) => Json(json!({ "count": events.len(), "events": events })).into_response(),
        Ok(Err(e)) => ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read audit trail: {e}"),
        )
        .into_response(),
        Err(e) => ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("audit reader failed: {e}"),
        )
        .into_response(),
    }
}
