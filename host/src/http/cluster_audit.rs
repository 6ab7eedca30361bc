//! `GET /audit?cluster=true`: every replica's trail in one answer. This
//! replica reads its own, asks each other replica listed in the cluster
//! (at its `public_url`) for the same query, and merges the events by time;
//! the newest `n` are kept. A replica that does not answer is named in
//! `replicas` with its error: the answer is what could be read, never a
//! failure of the whole.
//!
//! The URLs come from etcd, which is not trusted with credentials: the
//! caller's token is never sent. The request is signed with the cluster
//! secret instead ([`PEER_HEADER`], which peers take for this read only),
//! only `http`/`https` URLs are asked (others are named as refused), no
//! redirect is followed, a peer's body is read up to
//! [`MAX_PEER_BODY_BYTES`], and a failed peer's body is never copied into
//! the answer (its status and a fixed reason only): a URL pointing at an
//! internal service reads nothing of it back.

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use serde_json::value::RawValue;

use super::ApiError;
use crate::cluster::Cluster;
use crate::cluster::proof::PEER_HEADER;
use autoheal_api::audit::{AuditAnswer, ReplicaRead};
use autoheal_core::audit::AuditQuery;
use autoheal_core::query::Query;

/// How long one replica may take to answer.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest body read from one replica: `n` is at most 5000 events,
/// which stay far below this; a peer sending more is cut off.
pub(super) const MAX_PEER_BODY_BYTES: usize = 16 << 20;

/// The client replicas are asked with: no redirects (a redirect would
/// carry the signed header wherever the peer points).
#[derive(Clone)]
pub(super) struct PeerClient(reqwest::Client);

impl PeerClient {
    pub(super) fn new() -> Self {
        Self(
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client without TLS roots to load builds"),
        )
    }
}

/// Why a peer gave nothing: fixed words, never what it sent.
#[derive(Debug)]
enum PeerFailure {
    /// Its URL is not `http`/`https`: not asked at all.
    Refused,
    Unreachable,
    TimedOut,
    Status(reqwest::StatusCode),
    TooLarge,
    NotAnAuditAnswer,
}

impl std::fmt::Display for PeerFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused => write!(f, "refused: its URL is not http(s); not asked"),
            Self::Unreachable => write!(f, "unreachable"),
            Self::TimedOut => write!(f, "no answer within {PEER_TIMEOUT:?}"),
            Self::Status(status) => write!(f, "HTTP {}", status.as_u16()),
            Self::TooLarge => write!(f, "answer larger than {MAX_PEER_BODY_BYTES} bytes"),
            Self::NotAnAuditAnswer => write!(f, "not an audit answer"),
        }
    }
}

impl From<reqwest::Error> for PeerFailure {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            Self::TimedOut
        } else {
            Self::Unreachable
        }
    }
}

/// `url`, if its scheme is `http` or `https` and it names a host.
fn peer_base(url: &str) -> Option<reqwest::Url> {
    let parsed = reqwest::Url::parse(url).ok()?;
    matches!(parsed.scheme(), "http" | "https")
        .then_some(parsed)
        .filter(|u| u.host().is_some())
}

/// Asks one peer for `path_and_query`, signed.
async fn ask_peer(
    cluster: &Cluster,
    client: &PeerClient,
    url: &str,
    path_and_query: &str,
) -> Result<Vec<Box<RawValue>>, PeerFailure> {
    // Below its URL, as it registered it (a path prefix of a proxy stays).
    let target =
        peer_base(&format!("{}{path_and_query}", url.trim_end_matches('/'))).ok_or(PeerFailure::Refused)?;
    let mut response = client
        .0
        .get(target)
        .timeout(PEER_TIMEOUT)
        .header(PEER_HEADER, cluster.sign_peer_request("GET", path_and_query))
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(PeerFailure::Status(response.status()));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_PEER_BODY_BYTES as u64)
    {
        return Err(PeerFailure::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_PEER_BODY_BYTES {
            return Err(PeerFailure::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    #[derive(serde::Deserialize)]
    struct Peer {
        events: Vec<Box<RawValue>>,
    }
    serde_json::from_slice::<Peer>(&body)
        .map(|peer| peer.events)
        .map_err(|_| PeerFailure::NotAnAuditAnswer)
}

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
    client: &PeerClient,
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
            replicas.push(ReplicaRead {
                replica: cluster.replica().to_owned(),
                count: Some(answer.count),
                ..ReplicaRead::default()
            });
            events.extend(answer.events);
        }
        Err(ApiError(_, error)) => replicas.push(ReplicaRead {
            replica: cluster.replica().to_owned(),
            error: Some(error),
            ..ReplicaRead::default()
        }),
    }
    let path_and_query = match query {
        Some(query) => format!("/audit?{query}"),
        None => "/audit".to_owned(),
    };
    let peers = members.iter().filter(|m| m.replica != cluster.replica());
    let asks = peers.map(|member| {
        let path_and_query = &path_and_query;
        async move {
            (
                member,
                ask_peer(cluster, client, &member.url, path_and_query).await,
            )
        }
    });
    for (member, answer) in futures_util::future::join_all(asks).await {
        match answer {
            Ok(found) => {
                replicas.push(ReplicaRead {
                    replica: member.replica.clone(),
                    url: Some(member.url.clone()),
                    count: Some(found.len()),
                    ..ReplicaRead::default()
                });
                events.extend(found);
            }
            Err(error) => {
                tracing::warn!(replica = %member.replica, url = %member.url, %error, "a replica's trail could not be read");
                replicas.push(ReplicaRead {
                    replica: member.replica.clone(),
                    url: Some(member.url.clone()),
                    count: None,
                    error: Some(error.to_string()),
                    refused: Some(matches!(error, PeerFailure::Refused)),
                })
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
    Ok(Json(AuditAnswer {
        count: events.len(),
        events,
        replicas: Some(replicas),
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_are_asked() {
        assert!(peer_base("http://127.0.0.1:9009").is_some());
        assert!(peer_base("https://r1.example:9009/").is_some());
        for url in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "ftp://127.0.0.1:21",
            "data:,x",
            "r1:9009",
            "",
        ] {
            assert!(peer_base(url).is_none(), "{url}");
        }
    }
}
