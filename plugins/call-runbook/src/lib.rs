//! `call-runbook`: POST an alert to a runbook endpoint the manifest allows
//! (a cache flush, a feature flag, a load balancer drain), with a token the
//! host holds. The plugin names the secret; it never reads its value.
//!
//! # Config keys (the manifest's `[config]` table)
//!
//! - `url` (required): the endpoint, with `${label}` placeholders filled
//!   from the alert's labels (URL-encoded). The manifest's
//!   `[capabilities.http] allow` must allow `POST` to it.
//! - `method` (default `POST`).
//! - `body` (optional): the body, with `${label}` placeholders (escaped for
//!   a JSON string). By default, the alert as JSON: `{"alertname": ...,
//!   "status": ..., "fingerprint": ..., "labels": {...}}`.
//! - `content_type` (default `application/json`).
//! - `secret` (optional): the name of a secret of `[capabilities.http]
//!   secrets` for the host to put in.
//!
//! # What it does
//!
//! 1. A resolved alert: nothing.
//! 2. A bad config, or a placeholder the alert has no label for: fail,
//!    before any host call.
//! 3. Send the request. In dry-run a POST is recorded, not sent: it answers
//!    what it would have done. A denied, failed or timed-out request, or an
//!    answer that is not 2xx: fail, with the status and the start of the
//!    body (secrets already scrubbed by the host).
//! 4. A 2xx: `POST URL answered 200`.

use autoheal_sdk::http;
use autoheal_sdk::prelude::*;
use autoheal_sdk::remedy;
use autoheal_sdk::template::{self, json_string, url_component};

export_plugin!(handle);

/// How much of a failing answer's body an error quotes.
const QUOTED_BODY: usize = 200;

/// The plugin's config, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    url: String,
    method: String,
    body: Option<String>,
    content_type: String,
    secret: Option<String>,
}

impl Settings {
    fn from_config(config: &Config) -> Result<Self, String> {
        let method = config.get("method").unwrap_or("POST").trim().to_ascii_uppercase();
        if method.is_empty() || !method.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(format!("config key `method` has invalid value `{method}`"));
        }
        Ok(Settings {
            url: config.require("url")?.trim().to_owned(),
            method,
            body: config.get("body").map(str::to_owned),
            content_type: config
                .get("content_type")
                .unwrap_or("application/json")
                .to_owned(),
            secret: config
                .get("secret")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        })
    }
}

/// The alert as a small JSON document (the labels sorted, as the SDK keeps them).
fn alert_json(alert: &Alert) -> String {
    let labels: Vec<String> = alert
        .labels
        .iter()
        .map(|(k, v)| format!("\"{}\":\"{}\"", json_string(k), json_string(v)))
        .collect();
    format!(
        "{{\"alertname\":\"{}\",\"status\":\"{}\",\"fingerprint\":\"{}\",\"labels\":{{{}}}}}",
        json_string(alert.alertname().unwrap_or_default()),
        if alert.is_firing() { "firing" } else { "resolved" },
        json_string(&alert.fingerprint),
        labels.join(",")
    )
}

/// The first bytes of a body, for an error message.
fn quoted(response: &http::Response) -> String {
    let text = response.text();
    let mut end = text.len().min(QUOTED_BODY);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim().to_owned()
}

/// The plugin's entry point: act on one alert.
fn handle(alert: Alert, config: Config) -> Result<Outcome, String> {
    if let Some(answer) = remedy::skip_resolved(&alert) {
        return Ok(answer);
    }
    let settings = Settings::from_config(&config)?;
    let url = template::fill(&settings.url, &alert, url_component)?;
    let body = match &settings.body {
        Some(body) => template::fill(body, &alert, json_string)?,
        None => alert_json(&alert),
    };
    let mut request = http::Request::new(&settings.method, &url)
        .header("content-type", &settings.content_type)
        .body(body);
    if let Some(secret) = &settings.secret {
        request = request.secret(secret);
    }
    let method = &settings.method;
    let response = request.send().map_err(|e| format!("{method} {url}: {e}"))?;
    if !response.sent {
        let summary = format!("{method} {url} recorded, not sent (dry-run)");
        log::info(&summary);
        return Ok(Outcome::acted(summary));
    }
    if !response.is_success() {
        return Err(format!(
            "{method} {url} answered {}: {}",
            response.status,
            quoted(&response)
        ));
    }
    let summary = format!("{method} {url} answered {}", response.status);
    log::info(&summary);
    Ok(Outcome::acted(summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_sdk::http::{HttpError, Response};
    use autoheal_sdk::testing::{FakeHost, assert_resolved_alert_does_nothing, config, firing};

    const PREFIX: &str = "http://127.0.0.1:8080/runbooks/";

    /// The bundled manifest's config.
    fn bundled_config() -> Config {
        config(&[
            ("url", "http://127.0.0.1:8080/runbooks/flush-sessions/${service}"),
            ("secret", "RUNBOOK_TOKEN"),
        ])
    }

    fn bundled_host() -> FakeHost {
        FakeHost::new()
            .allow_http("POST", PREFIX)
            .allow_secrets(["RUNBOOK_TOKEN"])
    }

    fn alert() -> Alert {
        firing(&[("alertname", "SessionCacheSaturated"), ("service", "crm web")])
    }

    #[test]
    fn posts_the_alert_with_the_secret_named() {
        let host = bundled_host()
            .on_http("POST", PREFIX, Response::new(202, "queued"))
            .install();
        let answer = handle(alert(), bundled_config()).unwrap();
        let url = "http://127.0.0.1:8080/runbooks/flush-sessions/crm%20web";
        assert_eq!(answer, Outcome::acted(format!("POST {url} answered 202")));
        let request = &host.requests()[0];
        assert_eq!(request.url, url);
        assert_eq!(request.secrets, vec!["RUNBOOK_TOKEN".to_string()]);
        let body = String::from_utf8(request.body.clone().unwrap()).unwrap();
        assert!(body.contains(r#""alertname":"SessionCacheSaturated""#), "{body}");
        assert!(body.contains(r#""service":"crm web""#), "{body}");
    }

    #[test]
    fn in_dry_run_the_post_is_recorded_not_sent() {
        let host = bundled_host().dry_run().install();
        let answer = handle(alert(), bundled_config()).unwrap();
        assert!(answer.text().contains("recorded, not sent"), "{answer:?}");
        assert_eq!(host.requests().len(), 1);
    }

    #[test]
    fn an_answer_that_is_not_2xx_or_a_refusal_fails() {
        let _host = bundled_host()
            .on_http("POST", PREFIX, Response::new(503, "runbook busy"))
            .install();
        let error = handle(alert(), bundled_config()).unwrap_err();
        assert!(error.ends_with("answered 503: runbook busy"), "{error}");
        drop(_host);
        let _host = bundled_host()
            .on_http_error("POST", PREFIX, HttpError::Timeout("5 s".into()))
            .install();
        assert!(handle(alert(), bundled_config()).unwrap_err().contains("timeout"));
        drop(_host);
        let _host = FakeHost::new().allow_http("POST", "http://elsewhere/").install();
        assert!(handle(alert(), bundled_config()).unwrap_err().contains("denied"));
    }

    #[test]
    fn a_body_template_is_filled_json_escaped() {
        let host = bundled_host()
            .allow_http("PUT", PREFIX)
            .on_http("PUT", PREFIX, Response::new(200, ""))
            .install();
        let config = config(&[
            ("url", "http://127.0.0.1:8080/runbooks/flag"),
            ("body", r#"{"flag":"${service}","on":false}"#),
            ("method", "put"),
        ]);
        handle(alert(), config).unwrap();
        let request = &host.requests()[0];
        assert_eq!(request.method, "PUT");
        assert_eq!(
            request.body.as_deref(),
            Some(&br#"{"flag":"crm web","on":false}"#[..])
        );
        assert!(request.secrets.is_empty());
    }

    #[test]
    fn bad_configs_fail_before_any_host_call() {
        assert!(handle(alert(), config(&[])).unwrap_err().contains("url"));
        let unknown_label = config(&[("url", "http://127.0.0.1:8080/runbooks/${nope}")]);
        assert!(handle(alert(), unknown_label).unwrap_err().contains("nope"));
        let bad_method = config(&[("url", "http://x/"), ("method", "P OST")]);
        assert!(handle(alert(), bad_method).is_err());
        assert_resolved_alert_does_nothing(handle, bundled_config());
    }
}
