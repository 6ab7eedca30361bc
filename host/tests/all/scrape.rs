//! A real Prometheus, with the shipped config and rules, scrapes the host.

use std::time::Duration;

use serde_json::{Value, json};

use crate::real::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_host_and_evaluates_the_shipped_rules() {
    let host = ServedHost::start(
        &[("crm.toml", bundled_manifest())],
        std::sync::Arc::new(autoheal_containers::NoEngine),
        |_| {},
    )
    .await;
    host.post_alerts(json!([
        opted_in("TcpEndpointDownFast"),
        alert("Quiet", "firing", json!({}))
    ]))
    .await;
    host.remediator.drain().await;

    let target = host.url.trim_start_matches("http://").to_owned();
    let values = tokio::task::spawn_blocking(move || {
        let prometheus = Prometheus::start(free_port(), &[("127.0.0.1:9009", &target)]);
        let (_, rules) = http(&prometheus.url, "GET", "/api/v1/rules", "").unwrap();
        let loaded: Vec<Value> = rules["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect();
        let heartbeat = wait_until("recording rules to have values", Duration::from_secs(60), || {
            // rate() needs two scrapes: wait until every recording rule has a value.
            let ready = [
                "autoheal:cooldown_active",
                "autoheal:actions:rate_5m",
                "autoheal:action_fail_rate_15m",
            ]
            .iter()
            .all(|rule| prometheus.query(rule).is_some());
            prometheus
                .query("autoheal:heartbeat:age_seconds")
                .filter(|_| ready)
        });
        (
            loaded.len(),
            heartbeat,
            prometheus.query("up{job=\"autoheal\"}"),
            prometheus.query("autoheal:cooldown_active"),
            prometheus.query("autoheal_actions_total{alertname=\"TcpEndpointDownFast\",result=\"dry_run\"}"),
            prometheus.query("autoheal_enabled"),
            prometheus.query("count(autoheal:actions:rate_5m)"),
            prometheus.query("count(autoheal:action_fail_rate_15m)"),
        )
    })
    .await
    .unwrap();
    let (rules, heartbeat, up, cooldown_active, dry_runs, enabled, rate, fail_rate) = values;
    assert_eq!(
        rules, 40,
        "every rule of monitoring/rules/*.yml: 25 recording and 15 alerting rules"
    );
    assert!((0.0..120.0).contains(&heartbeat), "heartbeat age {heartbeat}");
    assert_eq!(up, Some(1.0));
    assert_eq!(cooldown_active, Some(1.0), "one alertname in cooldown");
    assert_eq!(dry_runs, Some(1.0));
    assert_eq!(enabled, Some(0.0));
    assert_eq!(rate, Some(1.0), "autoheal:actions:rate_5m is recorded");
    assert_eq!(fail_rate, Some(1.0), "autoheal:action_fail_rate_15m is recorded");
}
