//! `GET /vision`: the unified operations view as JSON (see [`autoheal_vision`]).

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use super::vision_cache::VisionCache;
use super::{ApiError, query_pairs};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::switches::Switches;
use autoheal_vision::{DEFAULT_TREND_RANGE, Sources, autoheal_from_host, collect, parse_trend_range};

/// `GET /vision[?range=6h]`: always 200 with the report; a source that is
/// down is reported in it (`prometheus.reachable`, `alertmanager.reachable`)
/// rather than as an HTTP error, so the console can say which one. The
/// upstream reads are shared ([`VisionCache`]); the host's own state is
/// always current.
pub(super) async fn vision(
    State(client): State<reqwest::Client>,
    State(cache): State<VisionCache>,
    State(config): State<Arc<Config>>,
    State(metrics): State<Arc<Metrics>>,
    State(switches): State<Arc<Switches>>,
    RawQuery(query): RawQuery,
) -> Response {
    let range = query_pairs(query.as_deref()).and_then(|pairs| {
        pairs.expect_only(&["range"])?;
        match pairs.one::<String>("range")? {
            None => Ok(DEFAULT_TREND_RANGE),
            Some(text) => parse_trend_range(&text)
                .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("query parameter `range`: {e}"))),
        }
    });
    let range = match range {
        Ok(range) => range,
        Err(e) => return e.into_response(),
    };
    let state = switches.state();
    let autoheal = autoheal_from_host(
        state.enabled,
        state.dry_run,
        switches.mode().0,
        metrics.last_action_epoch(),
    );
    let sources = Sources {
        client: &client,
        prometheus_url: &config.prometheus_url,
        alertmanager: &config.alertmanager,
        trend_range: Some(range),
    };
    let mut report = cache
        .get_or_collect(
            range,
            config.vision_cache,
            collect(&sources, Some(autoheal.clone())),
        )
        .await;
    report.autoheal = autoheal;
    Json(report).into_response()
}
