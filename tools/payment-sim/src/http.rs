//! The HTTP face of the simulator: status JSON, mode switches and `/metrics`.

use std::future::Future;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::model::{Mode, Simulator, Status};

/// Content type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /` (status JSON), `POST /mode/{mode}` (switch, answers the status JSON; an unknown mode
/// is a 400 with `{"error": "..."}`) and `GET /metrics`.
pub fn router(sim: Arc<Simulator>) -> Router {
    Router::new()
        .route("/", get(status))
        .route("/mode/{mode}", post(set_mode))
        .route("/metrics", get(metrics))
        .with_state(sim)
}

/// Serves [`router`] on `listener` until `shutdown` completes, then finishes the requests in
/// flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sim: Arc<Simulator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(sim))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn status(State(sim): State<Arc<Simulator>>) -> Json<Status> {
    Json(sim.status())
}

async fn set_mode(State(sim): State<Arc<Simulator>>, Path(mode): Path<String>) -> Response {
    match mode.parse::<Mode>() {
        Ok(mode) => {
            sim.set_mode(mode);
            Json(sim.status()).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

async fn metrics(State(sim): State<Arc<Simulator>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        sim.render_metrics(),
    )
}
