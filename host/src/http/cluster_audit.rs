//! `GET /audit?cluster=true`: every replica's trail in one answer. This
//! replica reads its own, asks each other replica listed in the cluster
//! (at its `public_url`, with the caller's credentials) for the same query,
//! and merges the events by time; the newest `n` are kept. A replica that
//! does not answer is named in `replicas` with its error: the answer is
//! what could be read, never a failure of the whole.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{ApiError, AuditAnswer};
use crate::cluster::Cluster;
use autoheal_core::audit::AuditQuery;
use autoheal_core::query::Query;

/// How long one replica may take to answer.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// `Some(rest of the query)` when it asks for the whole cluster.
pub(super) fn wants_cluster(query: Option<&str>) -> Result<Option<Option<String>>, ApiError> {
    let parsed = Query::parse(query)?;
    let Some(flag) = parsed.non_empty("cluster")? else {
        return Ok(None);
    };
    match flag.as_str() {
        "true" | "1" => {}
        "false" | "0" => return Ok(None),
        other => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("cluster: {other:?} is not true or false"),
            ));
        }
    }
    let rest: Vec<(String, String)> =
        serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or(""))
            .unwrap_or_default()
            .into_iter()
            .filter(|(key, _)| key != "cluster")
            .collect();
    let rest = serde_urlencoded::to_string(rest).unwrap_or_default();
    // Checked here, so that a bad query is one 400 and not one per replica.
    AuditQuery::parse(Some(&rest))?;
    Ok(Some((!rest.is_empty()).then_some(rest)))
}

/// This replica's `local` answer merged with every other replica's.
pub(super) async fn merged(
    cluster: &Cluster,
    client: &reqwest::Client,
    headers: &HeaderMap,
    query: Option<&str>,
    local: Result<AuditAnswer, ApiError>,
) -> Result<Response, ApiError> {
    let n = AuditQuery::parse(query)?.n;
    let members = cluster.members().await.map_err(|e| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the cluster's replicas could not be listed: {e}"),
        )
    })?;
    let mut events: Vec<Box<RawValue>> = Vec::new();
    let mut replicas = Vec::new();
    match local {
        Ok(answer) => {
            replicas.push(json!({ "replica": cluster.replica(), "count": answer.count }));
            events.extend(answer.events);
        }
        Err(ApiError(_, error)) => replicas.push(json!({ "replica": cluster.replica(), "error": error })),
    }
    let peers = members.iter().filter(|m| m.replica != cluster.replica());
    let asks = peers.map(|member| async move {
        let url = format!("{}/audit?{}", member.url, query.unwrap_or(""));
        let mut request = client.get(&url).timeout(PEER_TIMEOUT);
        if let Some(authorization) = headers.get(header::AUTHORIZATION) {
            request = request.header(header::AUTHORIZATION, authorization.clone());
        }
        let answer = async {
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response.text().await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("HTTP {status}: {body}"));
            }
            #[derive(serde::Deserialize)]
            struct Peer {
                events: Vec<Box<RawValue>>,
            }
            serde_json::from_str::<Peer>(&body)
                .map(|peer| peer.events)
                .map_err(|e| e.to_string())
        }
        .await;
        (member, answer)
    });
    for (member, answer) in futures_util::future::join_all(asks).await {
        match answer {
            Ok(found) => {
                replicas.push(json!({ "replica": member.replica, "url": member.url, "count": found.len() }));
                events.extend(found);
            }
            Err(error) => {
                replicas.push(json!({ "replica": member.replica, "url": member.url, "error": error }))
            }
        }
    }
    // By time, then replica and id, so that the order is the same on every ask.
    let mut keyed: Vec<((f64, String, u64), Box<RawValue>)> = events
        .into_iter()
        .map(|event| {
            let head: Value = serde_json::from_str(event.get()).unwrap_or_default();
            let key = (
                head["ts"].as_f64().unwrap_or(0.0),
                head["replica"].as_str().unwrap_or_default().to_owned(),
                head["id"].as_u64().unwrap_or(0),
            );
            (key, event)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    let skip = keyed.len().saturating_sub(n);
    let events: Vec<Box<RawValue>> = keyed.into_iter().skip(skip).map(|(_, event)| event).collect();
    Ok(Json(json!({ "count": events.len(), "events": events, "replicas": replicas })).into_response())
}
