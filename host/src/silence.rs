//! "Ack": silences in Alertmanager, created through its v2 API.

use std::time::Duration;

use autoheal_core::failover::{Failure, Members};
/// Matchers are parsed in `autoheal-core` (no HTTP there, fuzzed alone).
pub use autoheal_core::matcher::{Matcher, MatcherError, parse_matchers};
use autoheal_core::util::{DurationError, error_chain, parse_duration};
use serde::Serialize;
use serde_json::{Value, json};

/// Longest silence an ack may create.
pub const MAX_SILENCE: Duration = Duration::from_secs(90 * 24 * 3600);

/// A silence duration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceDurationError {
    /// Not a duration at all.
    #[error(transparent)]
    NotADuration(#[from] DurationError),
    /// Zero.
    #[error("duration must be longer than zero")]
    Zero,
    /// Longer than the configured maximum (`ack_max_duration`).
    #[error("duration must be at most {0} (ack_max_duration)")]
    TooLong(String),
}

/// `30m`, `2h`, `24h`, `1d`: positive and at most `max` (the config's
/// `ack_max_duration`, itself at most [`MAX_SILENCE`]).
pub fn parse_silence_duration(text: &str, max: Duration) -> Result<Duration, SilenceDurationError> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(SilenceDurationError::Zero);
    }
    if duration > max.min(MAX_SILENCE) {
        return Err(SilenceDurationError::TooLong(
            humantime::format_duration(max.min(MAX_SILENCE)).to_string(),
        ));
    }
    Ok(duration)
}

/// Why Alertmanager did not create the silence.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    /// No connection, or no answer in time.
    #[error("Alertmanager at {url} not reachable: {message}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// Alertmanager answered with an error status.
    #[error("Alertmanager at {url} refused the silence (HTTP {status}): {message}")]
    Refused {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The body of the answer, shortened.
        message: String,
    },
}

/// No answer, a 5xx or an answer that is not Alertmanager's: the next member
/// is asked. A 4xx (bad matchers, say) is refused by every member alike. A
/// member that created the silence but whose answer was lost may leave a
/// second one on the next member: the same matchers and end, harmless, and
/// better than no silence at all.
impl Failure for SilenceError {
    fn try_next(&self) -> bool {
        match self {
            SilenceError::Unreachable { .. } => true,
            SilenceError::Refused { status, .. } => !(400..500).contains(status),
        }
    }
}

/// A silence Alertmanager created.
#[derive(Debug, Clone, Serialize)]
pub struct Silence {
    /// Alertmanager's id for it.
    pub silence_id: String,
    /// When it starts (RFC 3339).
    pub starts_at: String,
    /// When it ends (RFC 3339).
    pub ends_at: String,
    /// The silence in Alertmanager's UI.
    pub url: String,
}

/// Creates a silence through Alertmanager's v2 API, on the first member
/// that answers (the members of an HA cluster share silences by gossip).
pub async fn create_silence(
    client: &reqwest::Client,
    alertmanager: &Members,
    matchers: &[Matcher],
    duration: Duration,
    comment: &str,
    created_by: &str,
) -> Result<Silence, SilenceError> {
    alertmanager
        .first(|url| async move { create_silence_at(client, &url, matchers, duration, comment, created_by).await })
        .await
}

/// Creates the silence on the member at `alertmanager_url`.
async fn create_silence_at(
    client: &reqwest::Client,
    alertmanager_url: &str,
    matchers: &[Matcher],
    duration: Duration,
    comment: &str,
    created_by: &str,
) -> Result<Silence, SilenceError> {
    let base = alertmanager_url.trim_end_matches('/');
    let starts = chrono::Utc::now();
    let ends = starts + chrono::Duration::from_std(duration).unwrap_or_default();
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body = json!({
        "matchers": matchers,
        "startsAt": fmt(starts),
        "endsAt": fmt(ends),
        "createdBy": created_by,
        "comment": comment,
    });
    let response = client
        .post(format!("{base}/api/v2/silences"))
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| SilenceError::Unreachable {
            url: base.to_owned(),
            message: error_chain(&e),
        })?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(SilenceError::Refused {
            url: base.to_owned(),
            status: status.as_u16(),
            message: text.trim().to_owned(),
        });
    }
    let silence_id = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("silenceID").and_then(Value::as_str).map(str::to_owned))
        .ok_or_else(|| SilenceError::Refused {
            url: base.to_owned(),
            status: status.as_u16(),
            message: format!("unexpected answer {text:?}"),
        })?;
    Ok(Silence {
        url: format!("{base}/#/silences/{silence_id}"),
        silence_id,
        starts_at: fmt(starts),
        ends_at: fmt(ends),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_member_that_gave_no_answer_sends_the_silence_elsewhere() {
        let refused = |status| SilenceError::Refused {
            url: "http://am".into(),
            status,
            message: String::new(),
        };
        let unreachable = SilenceError::Unreachable {
            url: "http://am".into(),
            message: "connection refused".into(),
        };
        assert!(unreachable.try_next());
        assert!(refused(503).try_next() && refused(500).try_next());
        assert!(refused(200).try_next(), "a 200 that is not Alertmanager's answer");
        assert!(!refused(400).try_next() && !refused(422).try_next());
    }

    #[test]
    fn durations() {
        let day = Duration::from_secs(86400);
        assert_eq!(
            parse_silence_duration("30m", day).unwrap(),
            Duration::from_secs(1800)
        );
        assert_eq!(
            parse_silence_duration("1d", day).unwrap(),
            Duration::from_secs(86400)
        );
        assert!(parse_silence_duration("0s", day).is_err());
        assert!(parse_silence_duration("soon", day).is_err());
        assert!(parse_silence_duration("365d", day).is_err());
        let err = parse_silence_duration("25h", day).unwrap_err().to_string();
        assert!(err.contains("1day") && err.contains("ack_max_duration"), "{err}");
        assert!(parse_silence_duration("30d", 100 * day).is_ok());
        assert!(
            parse_silence_duration("91d", 100 * day).is_err(),
            "never beyond 90 days"
        );
    }
}
