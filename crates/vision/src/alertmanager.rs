//! Firing alerts, read from Alertmanager's v2 API.

use std::time::Duration;

use autoheal_core::failover::{Failure, Members};
use serde::{Deserialize, Serialize};

use super::SourceError;
use super::prometheus::snippet;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One alert that is firing and neither silenced nor inhibited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiringAlert {
    /// Its `alertname` label.
    pub alertname: String,
    /// The `severity` label; empty when the alert has none.
    pub severity: String,
    /// When it started firing (RFC 3339).
    pub starts_at: String,
    /// The `summary` annotation, if any.
    pub summary: String,
}

/// The alerts Alertmanager would notify about now, from the first member
/// that answers (members of an HA cluster share their alerts by gossip), with
/// that member's URL.
pub async fn firing_alerts(
    client: &reqwest::Client,
    alertmanager: &Members,
) -> Result<(String, Vec<FiringAlert>), SourceError> {
    let (url, alerts) = alertmanager
        .first(|url| async move {
            let alerts = api_alerts(client, &url, "active=true&silenced=false&inhibited=false").await;
            alerts.map(|alerts| (url, alerts))
        })
        .await?;
    let mut firing: Vec<FiringAlert> = alerts
        .into_iter()
        .filter(|a| a.status.state == "active")
        .map(|a| FiringAlert {
            alertname: a.labels.get("alertname").cloned().unwrap_or_default(),
            severity: a.labels.get("severity").cloned().unwrap_or_default(),
            starts_at: a.starts_at,
            summary: a.annotations.get("summary").cloned().unwrap_or_default(),
        })
        .collect();
    // Most severe first, then oldest first: what to look at first.
    firing.sort_by(|a, b| {
        severity_rank(&a.severity)
            .cmp(&severity_rank(&b.severity))
            .then_with(|| a.starts_at.cmp(&b.starts_at))
    });
    Ok((url, firing))
}

/// The fingerprints of every alert Alertmanager holds unresolved, silenced
/// and inhibited ones included: an alert not among them has resolved. Asked
/// of the first member that answers.
pub async fn unresolved_fingerprints(
    client: &reqwest::Client,
    alertmanager: &Members,
) -> Result<std::collections::HashSet<String>, SourceError> {
    let alerts = alertmanager
        .first(|url| async move {
            api_alerts(
                client,
                &url,
                "active=true&silenced=true&inhibited=true&unprocessed=true",
            )
            .await
        })
        .await?;
    Ok(alerts.into_iter().map(|a| a.fingerprint).collect())
}

async fn api_alerts(client: &reqwest::Client, url: &str, filter: &str) -> Result<Vec<ApiAlert>, SourceError> {
    let base = url.trim_end_matches('/');
    let response = client
        .get(format!("{base}/api/v2/alerts?{filter}"))
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| SourceError::unreachable(base, e))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| SourceError::unreachable(base, e))?;
    if !status.is_success() {
        return Err(SourceError::Refused {
            url: base.to_owned(),
            status: status.as_u16(),
            message: snippet(&text),
        });
    }
    serde_json::from_str(&text).map_err(|e| {
        SourceError::bad_answer(
            base,
            &format!("not an Alertmanager alert list ({e}): {}", snippet(&text)),
        )
    })
}

/// No answer, a server error or an answer that is not Alertmanager's: another
/// member may do better. A 4xx is the member's answer.
impl Failure for SourceError {
    fn try_next(&self) -> bool {
        match self {
            SourceError::Refused { status, .. } => *status >= 500,
            SourceError::Unreachable { .. } | SourceError::BadAnswer { .. } => true,
        }
    }
}

pub fn severity_rank(severity: &str) -> u8 {
    match severity {
        "critical" => 0,
        "warning" => 1,
        "info" => 2,
        _ => 3,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiAlert {
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    starts_at: String,
    #[serde(default)]
    fingerprint: String,
    status: ApiStatus,
}

#[derive(Deserialize)]
struct ApiStatus {
    state: String,
}
