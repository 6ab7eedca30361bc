//! End to end with real components: Alertmanager delivers, autoheal decides,
//! the plugin restarts a real busybox container through Podman's Docker API.

use std::time::Duration;

use serde_json::{Value, json};

use crate::real::*;
use crate::support::*;

const WAIT: Duration = Duration::from_secs(60);

/// The bundled manifest, aimed at `container` (so that tests running at the
/// same time do not share a container), with the cooldown `cooldown`. Its
/// shipped repeat cap is taken out: these tests restart one container again
/// and again with short cooldowns to exercise the breaker, crashes and
/// chains, which the cap would cut short (it has tests of its own, in
/// `repeat_cap.rs`).
pub(crate) fn crm_manifest(container: &str, cooldown: &str) -> String {
    bundled_manifest()
        .replace("max_actions = [\"3/1h\", \"7/1d\"]\n", "")
        .replace("\"crm-api\"", &format!("{container:?}"))
        .replace("cooldown = \"10m\"", &format!("cooldown = {cooldown:?}"))
        .replace("stop_timeout_sec = 10", "stop_timeout_sec = 1")
        .replace("min_uptime_sec = \"60\"", "min_uptime_sec = \"0\"")
}

/// A Podman engine, one busybox container on 127.0.0.1, and the host with
/// the bundled plugin aimed at that container.
struct Rig {
    podman: Podman,
    container: String,
    host: ServedHost,
}

impl Rig {
    async fn start(
        cooldown: &str,
        edit_manifest: impl FnOnce(String) -> String,
        configure: impl FnOnce(&mut autoheal::config::RawConfig),
    ) -> Rig {
        let podman = Podman::start();
        let container = unique("crm-api");
        podman.run_httpd(&container, free_port());
        let manifest = edit_manifest(crm_manifest(&container, cooldown));
        let host = ServedHost::start(&[("crm.toml", manifest)], podman.runtime(), configure).await;
        Rig {
            podman,
            container,
            host,
        }
    }

    fn started_at(&self) -> String {
        self.podman.started_at(&self.container)
    }

    fn alertmanager(&self) -> Alertmanager {
        Alertmanager::start(&format!("{}/alert", self.host.url))
    }

    fn push_firing(&self, am: &Alertmanager) {
        am.push(tcp_down_labels(&self.container), autoheal_annotations(), None);
    }
}

fn tcp_down_labels(container: &str) -> Value {
    json!({ "alertname": "TcpEndpointDownFast", "service": container, "instance": format!("{container}:8000") })
}

fn autoheal_annotations() -> Value {
    json!({ "autoheal": "true", "summary": "crm-api TCP endpoint is down" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_alert_restarts_the_container_and_the_repeat_is_cooled_down() {
    let rig = Rig::start("10m", |m| m, real).await;
    let host = &rig.host;
    let am = rig.alertmanager();
    let before = rig.started_at();

    rig.push_firing(&am);
    let ok = host.wait_for("action_ok", 1, WAIT).await.remove(0);
    assert_eq!(ok["plugin"], "restart-crm-api");
    assert_eq!(ok["target"], rig.container.as_str());
    assert_eq!(ok["output"], format!("restarted {}", rig.container));
    let after = rig.started_at();
    assert_ne!(
        before, after,
        "StartedAt must change when the container is restarted"
    );
    let received = host.audit("webhook_received").await;
    assert_eq!(
        received[0]["receiver"], "autoheal",
        "the webhook came from Alertmanager"
    );

    // Alertmanager repeats the still-firing alert (repeat_interval 3s): cooled down.
    let skip = host.wait_for("decision_skip", 1, WAIT).await.remove(0);
    assert_eq!(skip["reason"], "cooldown", "{skip}");
    assert!(skip["remaining_sec"].as_u64().unwrap() > 500);
    assert_eq!(rig.started_at(), after, "restarted again within the cooldown");
    assert_eq!(host.audit("action_ok").await.len(), 1);
}

/// One outage seen by two of the shipped rules (the uptime probe and the
/// metrics scrape fail together) restarts the container once: the second
/// alert's restart joins the first, reaches neither the engine nor the
/// breaker, and nothing fails or pages. (Before, the second restart reached
/// the engine mid-restart: HTTP 500, `action_fail`, `AutohealActionFailed`
/// paged, and two of the breaker's three hourly restarts spent.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_alerts_of_one_outage_restart_the_container_once() {
    let rig = Rig::start("10m", |m| m, real).await;
    let host = &rig.host;
    let am = rig.alertmanager();
    let since = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    let before = rig.started_at();

    for alertname in ["UptimeProbeFailing", "CrmMetricsScrapeStale"] {
        am.push(
            json!({ "alertname": alertname, "service": rig.container, "instance": format!("{}:8000", rig.container) }),
            autoheal_annotations(),
            None,
        );
    }
    let done = host.wait_for("action_ok,action_fail", 2, WAIT).await;
    assert!(done.iter().all(|e| e["kind"] == "action_ok"), "{done:#?}");
    let alerts: std::collections::BTreeSet<&str> =
        done.iter().map(|e| e["alertname"].as_str().unwrap()).collect();
    assert_eq!(alerts.len(), 2, "both alerts were acted on: {done:#?}");
    let outcomes: Vec<&str> = done
        .iter()
        .flat_map(|e| e["calls"].as_array().unwrap())
        .filter(|c| c["capability"] == "containers.restart")
        .map(|c| c["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "ok").count(), 1, "{done:#?}");
    assert_eq!(
        outcomes.iter().filter(|o| **o == "joined").count(),
        1,
        "{done:#?}"
    );
    assert_ne!(rig.started_at(), before, "the container was restarted");
    let restarts = rig.podman.restart_events(&since, Some(&rig.container));
    assert_eq!(restarts.len(), 1, "Podman saw {restarts:#?}");

    // Nothing failed, so nothing pages; one of the breaker's places is spent.
    let (status, metrics) = http(&host.url, "GET", "/metrics", "").unwrap();
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap().to_owned();
    let failures: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("autoheal_action_failures_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(failures, 0.0, "{metrics}");
    assert!(host.audit("action_fail").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_records_the_restart_it_would_make() {
    let rig = Rig::start(
        "10m",
        |m| m,
        |c| {
            c.enabled = true;
            c.dry_run = true;
        },
    )
    .await;
    let am = rig.alertmanager();
    let before = rig.started_at();

    rig.push_firing(&am);
    let dry = rig.host.wait_for("action_dry_run", 1, WAIT).await.remove(0);
    assert_eq!(dry["cmd"], format!("restart {}", rig.container));
    let calls = dry["calls"].as_array().unwrap();
    assert_eq!(calls[0]["capability"], "containers.inspect");
    assert_eq!(
        calls[0]["outcome"], "ok",
        "inspect reads the real engine in dry-run: {calls:?}"
    );
    assert_eq!(calls[1]["capability"], "containers.restart");
    assert_eq!(calls[1]["outcome"], "recorded");
    assert_eq!(rig.started_at(), before, "dry-run restarted the container");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_the_manifest_does_not_allow_is_not_restarted() {
    // The plugin is configured for the container, but its allow-list names another.
    let other_allow_list = |m: String| {
        let allowed = m
            .lines()
            .find(|l| l.starts_with("containers = "))
            .unwrap()
            .to_owned();
        m.replace(&allowed, "containers = [\"some-other-container\"]")
    };
    let rig = Rig::start("10m", other_allow_list, real).await;
    let am = rig.alertmanager();
    let before = rig.started_at();

    rig.push_firing(&am);
    let fail = rig.host.wait_for("action_fail", 1, WAIT).await.remove(0);
    assert!(
        fail["error"]
            .as_str()
            .unwrap()
            .contains("may not touch container"),
        "{fail}"
    );
    let denied = rig.host.audit("capability_denied").await;
    assert_eq!(denied[0]["target"], rig.container.as_str());
    assert_eq!(denied[0]["reason"], "not_allowed");
    assert_eq!(rig.started_at(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_refuses_the_third_restart_and_closes_after_its_window() {
    let rig = Rig::start(
        "0s",
        |m| m,
        |c| {
            real(c);
            c.circuit_breaker.max_restarts = 2;
            c.circuit_breaker.window = "6s".into();
        },
    )
    .await;
    let host = &rig.host;
    let alert = opted_in("TcpEndpointDownFast");

    let mut starts = vec![rig.started_at()];
    for _ in 0..3 {
        host.post_alerts(json!([alert])).await;
        host.remediator.drain().await;
        starts.push(rig.started_at());
    }
    assert_ne!(starts[0], starts[1]);
    assert_ne!(starts[1], starts[2]);
    assert_eq!(
        starts[2], starts[3],
        "the third restart went through the open breaker"
    );
    let fail = host.audit("action_fail").await.remove(0);
    assert!(fail["error"].as_str().unwrap().contains("circuit_open"), "{fail}");
    let denied = host.audit("capability_denied").await.remove(0);
    assert_eq!(denied["reason"], "circuit_open");

    // The window passes: the breaker closes.
    tokio::time::sleep(Duration::from_secs(6)).await;
    host.post_alerts(json!([alert])).await;
    host.remediator.drain().await;
    assert_ne!(rig.started_at(), starts[3]);
    assert_eq!(host.audit("action_ok").await.len(), 3);
}

/// A burst of ten alerts through the real Alertmanager (one group) about
/// one service, `[budget] max_actions = 2` and one action per service at a
/// time: the first restarts the container, the other nine wait in the queue
/// for `max_in_flight_per_label` (two restarts of one container at once
/// would fail anyway); the next one's turn gets the second restart, and the
/// eight after it find `max_actions` spent when their turn comes (as does
/// every repeat of the group).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_of_two_stops_the_third_restart_in_a_burst_of_ten_alerts() {
    let rig = Rig::start(
        "0s",
        |m| m,
        |c| {
            real(c);
            c.circuit_breaker.max_restarts = 100;
            c.budget.max_actions = 2;
            c.budget.window = "1h".into();
            c.budget.per_label = "service".into();
            c.budget.max_in_flight_per_label = 1;
        },
    )
    .await;
    let host = &rig.host;
    let am = rig.alertmanager();
    let before = rig.started_at();
    let burst: Vec<Value> = (0..10)
        .map(|i| {
            let mut labels = tcp_down_labels(&rig.container);
            labels["instance"] = json!(format!("{}-{i}:8000", rig.container));
            json!({ "labels": labels, "annotations": autoheal_annotations() })
        })
        .collect();
    let (status, body) = http(&am.url, "POST", "/api/v2/alerts", &json!(burst).to_string()).unwrap();
    assert_eq!(status, 200, "Alertmanager refused the alerts: {body}");

    host.wait_for("action_ok", 2, WAIT).await;
    assert_ne!(rig.started_at(), before, "the container was restarted");
    let deadline = std::time::Instant::now() + WAIT;
    let skips = loop {
        let skips = host.audit("decision_skip").await;
        if skips.iter().any(|s| s["budget"] == "max_actions") {
            break skips;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "max_actions never spent: {skips:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(skips.iter().all(|s| s["reason"] == "budget"), "{skips:#?}");
    assert!(skips.iter().all(|s| s["budget"] == "max_actions"), "{skips:#?}");
    let queued = host.audit("action_queued").await;
    assert!(
        queued.iter().all(|q| q["waiting_for"]
            .as_str()
            .unwrap()
            .contains("max_in_flight_per_label")),
        "{queued:#?}"
    );
    assert!(
        skips.iter().any(|s| s["queued_at"].is_number()),
        "a queued action left the queue at its turn: {skips:#?}"
    );
    let restarted = rig.started_at();
    // Another repeat of the group: still no third restart.
    let seen = skips.len();
    host.wait_for("decision_skip", seen + 10, WAIT).await;
    host.remediator.drain().await;
    assert_eq!(
        host.audit("action_started").await.len(),
        2,
        "a third action started"
    );
    assert_eq!(host.audit("action_ok").await.len(), 2);
    assert!(host.audit("action_fail").await.is_empty());
    assert_eq!(rig.started_at(), restarted, "restarted a third time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_engine_fails_the_action_and_the_host_keeps_serving() {
    let missing = std::env::temp_dir().join(format!("{}/no.sock", unique("no-engine")));
    let runtime = std::sync::Arc::new(autoheal_containers::DockerRuntime::new(
        autoheal_containers::EngineAddress::Unix(missing.clone()),
        Duration::from_secs(2),
    ));
    let host = ServedHost::start(&[("crm.toml", crm_manifest("crm-api", "10m"))], runtime, real).await;
    host.post_alerts(json!([opted_in("TcpEndpointDownFast")])).await;
    host.remediator.drain().await;
    let fail = host.audit("action_fail").await.remove(0);
    let error = fail["error"].as_str().unwrap();
    assert!(
        error.contains("not reachable") && error.contains(&missing.display().to_string()),
        "{error}"
    );

    let url = host.url.clone();
    let (status, body) = tokio::task::spawn_blocking(move || http(&url, "GET", "/", "").unwrap())
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["container_engine"]["reachable"], false, "{body}");
    // And the next alert is still decided.
    let reply = host.post_alerts(json!([opted_in("UptimeProbeFailing")])).await;
    assert_eq!(reply["decisions"][0]["decision"], "act");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_notification_restarts_nothing() {
    // No cooldown: only the alert's resolved status can stop a second restart.
    let rig = Rig::start(
        "0s",
        |m| m,
        |c| {
            real(c);
            c.circuit_breaker.max_restarts = 100;
        },
    )
    .await;
    let host = &rig.host;
    let am = rig.alertmanager();

    rig.push_firing(&am);
    host.wait_for("action_ok", 1, WAIT).await;
    host.remediator.drain().await;
    let after_restart = rig.started_at();
    let resolved_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    am.push(
        tcp_down_labels(&rig.container),
        autoheal_annotations(),
        Some(&resolved_at),
    );

    let resolved = wait_until_reason(host, "resolved").await;
    assert_eq!(resolved["status"], "resolved");
    host.remediator.drain().await;
    assert_eq!(
        rig.started_at(),
        after_restart,
        "a resolved alert restarted the container"
    );
}

async fn wait_until_reason(host: &ServedHost, reason: &str) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let skips = host.audit("decision_skip").await;
        if let Some(skip) = skips.into_iter().find(|s| s["reason"] == reason) {
            return skip;
        }
        assert!(std::time::Instant::now() < deadline, "no decision_skip {reason}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn the_shipped_alertmanager_config_is_valid() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring/alertmanager.yml");
    let output = std::process::Command::new("amtool")
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("amtool is installed (apt-get install prometheus-alertmanager)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&config).unwrap();
    for needle in [
        "name: autoheal",
        "send_resolved: true",
        "alertname=~\"Autoheal.*\"",
        "receiver: autoheal-notify",
    ] {
        assert!(
            text.contains(needle),
            "monitoring/alertmanager.yml lacks {needle}"
        );
    }
}
