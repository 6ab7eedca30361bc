//! `POST /admin/enabled` and `POST /admin/dry-run`: flip the kill switch or
//! dry-run without a restart. Operator routes; each flip is persisted (see
//! [`crate::switches`]), audited as `mode_changed` and logged.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::ApiError;
use crate::auth::Principal;
use crate::cluster::{Cluster, Shared};
use crate::metrics::Metrics;
use crate::switches::{SwitchError, Switches};
use autoheal_api::switches::{DryRunRequest, EnabledRequest, SharedFlip, SwitchesAnswer};
use autoheal_core::audit::AuditLog;
use autoheal_core::event::{ActedBy, EventBody};
use autoheal_core::mode::ExecutionMode;
use autoheal_core::util::truncate_with_marker;

/// Longest `by` kept.
pub(super) const MAX_BY_BYTES: usize = 128;

/// The parts a flip needs (a state part: see `state_parts!`).
pub(super) struct Flip {
    pub(super) audit: Arc<AuditLog>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) switches: Arc<Switches>,
    pub(super) cluster: Option<Arc<Cluster>>,
}

/// `{"enabled": true|false, "by": "a comment"}`.
pub(super) async fn set_enabled(
    State(flip): State<Flip>,
    Extension(principal): Extension<Principal>,
    body: axum::body::Bytes,
) -> Response {
    match serde_json::from_slice::<EnabledRequest>(&body) {
        Ok(request) => {
            flip.apply(Some(request.enabled), None, super::actor(&principal, request.by))
                .await
        }
        Err(e) => bad_request(e, "{\"enabled\": true|false, \"by\": \"who\"}"),
    }
}

/// `{"dry_run": true|false, "by": "a comment"}`.
pub(super) async fn set_dry_run(
    State(flip): State<Flip>,
    Extension(principal): Extension<Principal>,
    body: axum::body::Bytes,
) -> Response {
    match serde_json::from_slice::<DryRunRequest>(&body) {
        Ok(request) => {
            flip.apply(None, Some(request.dry_run), super::actor(&principal, request.by))
                .await
        }
        Err(e) => bad_request(e, "{\"dry_run\": true|false, \"by\": \"who\"}"),
    }
}

/// Text a caller sent (`by`, a comment), trimmed, cut to `max` bytes
/// with a marker, and absent when empty.
pub(super) fn bounded(text: Option<String>, max: usize) -> Option<String> {
    text.map(|t| truncate_with_marker(t.trim(), max).unwrap_or_else(|| t.trim().to_owned()))
        .filter(|t| !t.is_empty())
}

fn bad_request(error: serde_json::Error, shape: &str) -> Response {
    ApiError(
        StatusCode::BAD_REQUEST,
        format!("invalid request: {error}; expected {shape}"),
    )
    .into_response()
}

impl Flip {
    async fn apply(self, enabled: Option<bool>, dry_run: Option<bool>, actor: ActedBy) -> Response {
        // The real-mode interlock is `Switches::set`'s, checked under the
        // lock that applies the flip: a check here, before it, would let two
        // flips that are each safe alone make real mode together.
        // In a cluster the flip goes to every replica; when etcd does not
        // answer it holds here and is shared once it does.
        let flipped = match &self.cluster {
            Some(cluster) => cluster
                .flip(&self.switches, enabled, dry_run)
                .await
                .map(|(change, shared)| (change, Some(shared))),
            None => self.switches.set(enabled, dry_run).map(|change| (change, None)),
        };
        let (change, shared) = match flipped {
            Ok(flipped) => flipped,
            Err(e @ SwitchError::RealRefused) => {
                return ApiError(StatusCode::CONFLICT, e.to_string()).into_response();
            }
            Err(e) => return ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        };
        let after = change.after;
        let (mode, dry_run_reason) = after.mode();
        tracing::warn!(
            enabled = after.enabled,
            dry_run = after.dry_run,
            by = actor.by.as_deref().unwrap_or("-"),
            by_kind = actor.by_kind.as_deref().unwrap_or("-"),
            "switches changed at runtime"
        );
        self.audit.emit(EventBody::ModeChanged(change.event(actor)));
        // The event set the gauge to this flip's state; it says how the
        // switches are now, and a flip that raced this one may have come
        // after it.
        let state = self.switches.state();
        self.metrics.enabled.set(i64::from(state.enabled));
        self.metrics.dry_run.set(i64::from(state.dry_run));
        Json(SwitchesAnswer {
            enabled: after.enabled,
            dry_run: after.dry_run,
            mode,
            dry_run_reason,
            real: mode == ExecutionMode::Real,
            cluster: shared.map(|shared| match shared {
                Shared::Yes => SharedFlip {
                    shared: true,
                    detail: None,
                },
                Shared::Later(e) => SharedFlip {
                    shared: false,
                    detail: Some(format!("this replica only until the cluster answers: {e}")),
                },
            }),
        })
        .into_response()
    }
}
