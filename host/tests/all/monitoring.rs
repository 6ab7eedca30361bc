//! The shipped `monitoring/alertmanager.yml` and `monitoring/prometheus.yml`
//! in front of autoheal acting for real with a webhook token and a read
//! token: Alertmanager's notification gets in (not a 401) and autoheal acts
//! on it, and Prometheus' scrape gets in and sees the heartbeat.
//!
//! The files are used as shipped except where a test must differ: the
//! addresses (autoheal's 127.0.0.1:9009 becomes the test host's port;
//! Prometheus sends its alerts nowhere instead of 127.0.0.1:9093), the token
//! files' paths (/etc/alertmanager/autoheal-webhook-token and
//! /etc/prometheus/autoheal-read-token become files of the test's), and
//! Prometheus' scrape and evaluation intervals (15 s become 1 s, so that the
//! test takes seconds). Routes, group_wait, http_config and the rules are
//! the shipped ones. autoheal reads the very same token files, so one file
//! in the format both sides take is shown to work.

use std::time::Duration;

use serde_json::json;

use crate::e2e::crm_manifest;
use crate::real::*;
use crate::support::*;

const WAIT: Duration = Duration::from_secs(45);

/// A read token, only for the read routes (the operator token also reads).
const READ_TOKEN: &str = "test-read-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_configs_reach_autoheal_in_real_mode_with_their_token_files() {
    let tokens = tempfile::tempdir().unwrap();
    // As an operator would write them: the token alone on a line.
    let webhook_token = tokens.path().join("autoheal-webhook-token");
    std::fs::write(&webhook_token, format!("{WEBHOOK_TOKEN}\n")).unwrap();
    let read_token = tokens.path().join("autoheal-read-token");
    std::fs::write(&read_token, format!("{READ_TOKEN}\n")).unwrap();

    let podman = Podman::start();
    let container = unique("crm-api");
    podman.run_httpd(&container, free_port());
    let host = {
        let (webhook_token, read_token) = (webhook_token.clone(), read_token.clone());
        ServedHost::start(
            &[("crm.toml", crm_manifest(&container, "10m"))],
            podman.runtime(),
            move |c| {
                real(c);
                c.auth.webhook_tokens.clear();
                c.auth.webhook_token_file = Some(webhook_token);
                c.auth.read_token_file = Some(read_token);
            },
        )
        .await
    };
    let before = podman.started_at(&container);

    // The tokens are really asked for: without them, 401.
    let url = host.url.clone();
    let (alert_status, metrics_status) = tokio::task::spawn_blocking(move || {
        let body = json!({ "version": "4", "status": "firing", "alerts": [] }).to_string();
        (
            http_with(&url, "POST", "/alert", &[], &body).unwrap().0,
            http_with(&url, "GET", "/metrics", &[], "").unwrap().0,
        )
    })
    .await
    .unwrap();
    assert_eq!((alert_status, metrics_status), (401, 401));

    let webhook = format!("{}/alert", host.url);
    let target = host.url.trim_start_matches("http://").to_owned();
    let (am, prometheus) = tokio::task::spawn_blocking(move || {
        let am = Alertmanager::start_shipped(&webhook, &webhook_token);
        let prometheus = Prometheus::start_reading(free_port(), &[("127.0.0.1:9009", &target)], &read_token);
        (am, prometheus)
    })
    .await
    .unwrap();

    // One of the remediable alerts, as Prometheus would send it: the shipped
    // routes take it to autoheal (group_wait 5s) with the token.
    am.push(
        json!({ "alertname": "TcpEndpointDownFast", "service": container, "instance": format!("{container}:8000") }),
        json!({ "autoheal": "true", "summary": "crm-api TCP endpoint is down" }),
        None,
    );
    let ok = host.wait_for("action_ok", 1, WAIT).await.remove(0);
    assert_eq!(ok["target"], container.as_str(), "{ok}");
    assert_ne!(
        podman.started_at(&container),
        before,
        "the container was restarted for real"
    );
    let received = host.audit("webhook_received").await;
    assert!(
        received.iter().any(|event| event["receiver"] == "autoheal"),
        "no webhook from Alertmanager's autoheal receiver: {received:?}"
    );
    let refused = host.audit("auth_failed").await;
    assert_eq!(
        refused.len(),
        2,
        "only this test's two requests without a token were refused, none of Alertmanager's or \
         Prometheus': {refused:?}"
    );

    // Prometheus scrapes with the read token: the target is up and the
    // heartbeat is there, fresh; the refused webhook above is counted.
    let values = tokio::task::spawn_blocking(move || {
        wait_until(
            "Prometheus to scrape autoheal, record the heartbeat age and not hold AutohealNoEvents15m pending",
            WAIT,
            || {
                prometheus.query("autoheal:heartbeat:age_seconds")?;
                // A rule evaluation before the first scrape saw no heartbeat
                // and made the alert pending; the next one, after the scrape,
                // must clear it (else this waits out WAIT and fails).
                let no_events = prometheus.query("count(ALERTS{alertname=\"AutohealNoEvents15m\"})");
                if no_events.is_some() {
                    return None;
                }
                Some((
                    prometheus.query("up{job=\"autoheal\"}"),
                    prometheus.query("time() - autoheal_heartbeat_timestamp_seconds{job=\"autoheal\"}"),
                    prometheus.query("autoheal_auth_failures_total{scope=\"webhook\",reason=\"missing\"}"),
                    no_events,
                ))
            },
        )
    })
    .await
    .unwrap();
    let (up, heartbeat_age, webhook_refusals, no_events) = values;
    assert_eq!(up, Some(1.0), "the scrape with the read token gets in");
    let age = heartbeat_age.expect("autoheal_heartbeat_timestamp_seconds is scraped");
    assert!((-5.0..30.0).contains(&age), "heartbeat age {age}");
    assert_eq!(webhook_refusals, Some(1.0));
    assert_eq!(no_events, None, "AutohealNoEvents15m is not even pending");
}

/// `amtool config routes test` on the shipped file: where each kind of
/// alert goes.
#[test]
fn the_shipped_alertmanager_routes_send_each_alert_where_it_belongs() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring/alertmanager.yml");
    let route = |alertname: &str| {
        let output = std::process::Command::new("amtool")
            .args(["config", "routes", "test"])
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("alertname={alertname}"))
            .output()
            .expect("amtool is installed (apt-get install prometheus-alertmanager)");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    // The remediable alerts: autoheal first, and people (after the delay).
    for alertname in [
        "TcpEndpointDownFast",
        "UptimeProbeFailing",
        "CrmMetricsScrapeStale",
    ] {
        assert_eq!(route(alertname), "autoheal,default", "{alertname}");
    }
    // autoheal's own alerts, the one it posts when it will not act among
    // them: people only, never autoheal's webhook.
    for alertname in [
        "AutohealNotRemediating",
        "AutohealNoEvents15m",
        "AutohealWebhookUnauthorized",
    ] {
        assert_eq!(route(alertname), "autoheal-notify", "{alertname}");
    }
    assert_eq!(route("PaymentRatePredictedBreachSoon"), "default");

    // The people route of the remediable alerts waits; autoheal's does not.
    let text = std::fs::read_to_string(&config).unwrap();
    let routes: Vec<&str> = text.split("    - matchers:").skip(1).collect();
    let remediable: Vec<&&str> = routes
        .iter()
        .filter(|r| r.contains("TcpEndpointDownFast"))
        .collect();
    assert_eq!(remediable.len(), 2, "{remediable:?}");
    assert!(
        remediable[0].contains("receiver: autoheal\n") && remediable[0].contains("continue: true"),
        "{}",
        remediable[0]
    );
    assert!(
        remediable[1].contains("receiver: default\n") && remediable[1].contains("group_wait: 10m"),
        "{}",
        remediable[1]
    );
    assert!(
        text.contains("credentials_file: /etc/alertmanager/autoheal-webhook-token"),
        "the autoheal receiver sends the webhook token from its file"
    );
}
