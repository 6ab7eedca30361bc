//! End to end with real components: Alertmanager delivers, autoheal decides,
//! the plugin restarts a real busybox container through Podman's Docker API.

use std::time::Duration;

use serde_json::{Value, json};

use crate::real::*;
use crate::support::*;

const WAIT: Duration = Duration::from_secs(60);

/// The bundled manifest, aimed at `container` (so that tests running at the
/// same time do not share a container), with extra `[limits]` lines.
fn crm_manifest(container: &str, cooldown: &str) -> String {
    bundled_manifest()
        .replace("\"crm-api\"", &format!("{container:?}"))
        .replace("cooldown = \"10m\"", &format!("cooldown = {cooldown:?}"))
        .replace("stop_timeout_sec = 10", "stop_timeout_sec = 1")
        .replace("min_uptime_sec = \"60\"", "min_uptime_sec = \"0\"")
}

fn tcp_down_labels(container: &str) -> Value {
    json!({ "alertname": "TcpEndpointDownFast", "service": container, "instance": format!("{container}:8000") })
}

fn autoheal_annotations() -> Value {
    json!({ "autoheal": "true", "summary": "crm-api TCP endpoint is down" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_alert_restarts_the_container_and_the_repeat_is_cooled_down() {
    let podman = Podman::start();
    let container = unique("crm-api");
    podman.run_httpd(&container, free_port());
    let host = ServedHost::start(
        &[("crm.toml", crm_manifest(&container, "10m"))],
        podman.runtime(),
        real,
    )
    .await;
    let am = Alertmanager::start(&format!("{}/alert", host.url));
    let before = podman.started_at(&container);

    am.push(tcp_down_labels(&container), autoheal_annotations(), None);
    let ok = host.wait_for("action_ok", 1, WAIT).await.remove(0);
    assert_eq!(ok["plugin"], "restart-crm-api");
    assert_eq!(ok["target"], container.as_str());
    assert_eq!(ok["output"], format!("restarted {container}"));
    let after = podman.started_at(&container);
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
    assert_eq!(
        podman.started_at(&container),
        after,
        "restarted again within the cooldown"
    );
    assert_eq!(host.audit("action_ok").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_records_the_restart_it_would_make() {
    let podman = Podman::start();
    let container = unique("crm-api");
    podman.run_httpd(&container, free_port());
    let host = ServedHost::start(
        &[("crm.toml", crm_manifest(&container, "10m"))],
        podman.runtime(),
        |c| {
            c.enabled = true;
            c.dry_run = true;
        },
    )
    .await;
    let am = Alertmanager::start(&format!("{}/alert", host.url));
    let before = podman.started_at(&container);

    am.push(tcp_down_labels(&container), autoheal_annotations(), None);
    let dry = host.wait_for("action_dry_run", 1, WAIT).await.remove(0);
    assert_eq!(dry["cmd"], format!("restart {container}"));
    let calls = dry["calls"].as_array().unwrap();
    assert_eq!(calls[0]["capability"], "containers.inspect");
    assert_eq!(
        calls[0]["outcome"], "ok",
        "inspect reads the real engine in dry-run: {calls:?}"
    );
    assert_eq!(calls[1]["capability"], "containers.restart");
    assert_eq!(calls[1]["outcome"], "recorded");
    assert_eq!(
        podman.started_at(&container),
        before,
        "dry-run restarted the container"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_the_manifest_does_not_allow_is_not_restarted() {
    let podman = Podman::start();
    let container = unique("crm-api");
    podman.run_httpd(&container, free_port());
    // The plugin is configured for the container but its allow-list names another.
    let manifest = crm_manifest(&container, "10m").replace(
        &format!("containers = [{container:?}]"),
        "containers = [\"some-other-container\"]",
    );
    let host = ServedHost::start(&[("crm.toml", manifest)], podman.runtime(), real).await;
    let am = Alertmanager::start(&format!("{}/alert", host.url));
    let before = podman.started_at(&container);

    am.push(tcp_down_labels(&container), autoheal_annotations(), None);
    let fail = host.wait_for("action_fail", 1, WAIT).await.remove(0);
    assert!(
        fail["error"]
            .as_str()
            .unwrap()
            .contains("may not touch container"),
        "{fail}"
    );
    let denied = host.audit("capability_denied").await;
    assert_eq!(denied[0]["target"], container.as_str());
    assert_eq!(denied[0]["reason"], "not_allowed");
    assert_eq!(podman.started_at(&container), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_refuses_the_third_restart_and_closes_after_its_window() {
    let podman = Podman::start();
    let container = unique("crm-api");
    podman.run_httpd(&container, free_port());
    let host = ServedHost::start(
        &[("crm.toml", crm_manifest(&container, "0s"))],
        podman.runtime(),
        |c| {
            real(c);
            c.circuit_breaker.max_restarts = 2;
            c.circuit_breaker.window = "6s".into();
        },
    )
    .await;
    let alert = opted_in("TcpEndpointDownFast");

    let mut starts = vec![podman.started_at(&container)];
    for _ in 0..3 {
        host.post_alerts(json!([alert])).await;
        host.engine.drain().await;
        starts.push(podman.started_at(&container));
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
    host.engine.drain().await;
    assert_ne!(podman.started_at(&container), starts[3]);
    assert_eq!(host.audit("action_ok").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_engine_fails_the_action_and_the_host_keeps_serving() {
    let missing = std::env::temp_dir().join(format!("{}/no.sock", unique("no-engine")));
    let runtime = std::sync::Arc::new(autoheal::containers::DockerRuntime::new(
        autoheal::containers::EngineAddress::Unix(missing.clone()),
        Duration::from_secs(2),
    ));
    let host = ServedHost::start(&[("crm.toml", crm_manifest("crm-api", "10m"))], runtime, real).await;
    host.post_alerts(json!([opted_in("TcpEndpointDownFast")])).await;
    host.engine.drain().await;
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
    let podman = Podman::start();
    let container = unique("crm-api");
    podman.run_httpd(&container, free_port());
    // No cooldown: only the alert's resolved status can stop a second restart.
    let host = ServedHost::start(
        &[("crm.toml", crm_manifest(&container, "0s"))],
        podman.runtime(),
        |c| {
            real(c);
            c.circuit_breaker.max_restarts = 100;
        },
    )
    .await;
    let am = Alertmanager::start(&format!("{}/alert", host.url));

    am.push(tcp_down_labels(&container), autoheal_annotations(), None);
    host.wait_for("action_ok", 1, WAIT).await;
    host.engine.drain().await;
    let after_restart = podman.started_at(&container);
    let resolved_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    am.push(
        tcp_down_labels(&container),
        autoheal_annotations(),
        Some(&resolved_at),
    );

    let resolved = wait_until_reason(&host, "resolved").await;
    assert_eq!(resolved["status"], "resolved");
    host.engine.drain().await;
    assert_eq!(
        podman.started_at(&container),
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
