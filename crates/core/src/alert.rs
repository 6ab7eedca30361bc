//! The Alertmanager webhook payload (version 4).
//!
//! Only `alerts` and each alert's `status` are required: hand-written
//! payloads (like the original system's smoke tests) carry little else, and
//! fields that newer Alertmanagers add are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Alertmanager's webhook body (payload version 4). Fields autoheal does not use are ignored.
/// It serializes too, for the alert `autoheal smoke` posts (absent fields left out).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    /// The payload version (`4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Alertmanager's key for the group the alerts were sent in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_key: Option<String>,
    /// The group's status: `firing` or `resolved`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The Alertmanager receiver that sent the webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    /// Alerts Alertmanager left out because of the receiver's `max_alerts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_alerts: Option<u64>,
    /// The alerts of the group.
    pub alerts: Vec<Alert>,
}

/// Whether an alert is firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The alert is firing.
    Firing,
    /// The alert has resolved.
    Resolved,
}

/// One alert of a webhook. It serializes as it came (an approval keeps the
/// alert it will act on in its `approval_requested` event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Firing or resolved.
    pub status: AlertStatus,
    /// Its labels; `alertname` names it.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its annotations; `autoheal` and `autoheal_action` opt it in.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When it started firing (RFC 3339).
    #[serde(default)]
    pub starts_at: String,
    /// Alertmanager sends the zero time for alerts with no end; that is `None`.
    #[serde(
        default,
        deserialize_with = "non_zero_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub ends_at: Option<String>,
    /// The link to the expression that fired it.
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    /// Alertmanager's fingerprint (made from the labels when missing).
    #[serde(default)]
    pub fingerprint: String,
}

impl Alert {
    /// The `alertname` label, or `""`.
    pub fn alertname(&self) -> &str {
        self.labels.get("alertname").map(String::as_str).unwrap_or("")
    }

    /// True when the alert is firing.
    pub fn is_firing(&self) -> bool {
        self.status == AlertStatus::Firing
    }

    /// Fills in a fingerprint for hand-written payloads that have none:
    /// a hash of the sorted labels, stable across calls like Alertmanager's.
    pub fn ensure_fingerprint(&mut self) {
        if self.fingerprint.is_empty() {
            let mut text = String::new();
            for (k, v) in &self.labels {
                text.push_str(k);
                text.push('\u{0}');
                text.push_str(v);
                text.push('\u{0}');
            }
            self.fingerprint = crate::util::sha256_hex(text.as_bytes())[..16].to_owned();
        }
    }
}

fn non_zero_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value: Option<String> = Option::deserialize(d)?;
    Ok(value.filter(|t| !t.is_empty() && !t.starts_with("0001-01-01")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_alertmanager_payload_and_ignores_new_fields() {
        let body = r#"{
          "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
          "receiver": "autoheal", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
          "externalURL": "http://am", "someFutureField": [1, 2],
          "alerts": [{
            "status": "firing",
            "labels": {"alertname": "TcpEndpointDownFast"},
            "annotations": {"autoheal": "true"},
            "startsAt": "2026-11-23T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prom/graph", "fingerprint": "abc"
          }]
        }"#;
        let payload: WebhookPayload = serde_json::from_str(body).unwrap();
        let alert = &payload.alerts[0];
        assert_eq!(alert.alertname(), "TcpEndpointDownFast");
        assert!(alert.is_firing());
        assert_eq!(alert.ends_at, None);
        assert_eq!(alert.generator_url, "http://prom/graph");
    }

    #[test]
    fn missing_fingerprint_is_derived_from_labels() {
        let mut a: Alert = serde_json::from_str(r#"{"status":"resolved","labels":{"a":"1"}}"#).unwrap();
        let mut b = a.clone();
        a.ensure_fingerprint();
        b.ensure_fingerprint();
        assert_eq!(a.fingerprint.len(), 16);
        assert_eq!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn missing_alerts_and_bad_status_are_errors_that_say_so() {
        let err = serde_json::from_str::<WebhookPayload>(r#"{"version":"4"}"#).unwrap_err();
        assert!(err.to_string().contains("alerts"), "{err}");
        let err = serde_json::from_str::<WebhookPayload>(r#"{"alerts":[{"status":"burning"}]}"#).unwrap_err();
        assert!(err.to_string().contains("burning"), "{err}");
    }
}
