//! autoheal behind a real Alertmanager HA pair (two `prometheus-alertmanager`
//! processes gossiping on loopback), `alertmanager_url` naming both: with
//! the first member stopped, everything autoheal asks of Alertmanager goes
//! to the second: acks, the operations view, notices and verify polls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::notify::Receiver;
use crate::real::*;
use crate::support::*;

const WAIT: Duration = Duration::from_secs(60);

/// A plugin whose container the engine does not have: its action fails,
/// which raises `AutohealActionFailed`.
fn ghost_plugin() -> (&'static str, String) {
    (
        "ghost.toml",
        manifest(
            "restart-ghost",
            "restart_container.wasm",
            &["GhostDown"],
            &["ghost"],
            "[config]\ncontainer = \"ghost\"\nmin_uptime_sec = 0",
        ),
    )
}

/// The first member stopped: an ack creates the silence on the second, a
/// notice reaches the team's receiver through it, and the verify poll reads
/// from it that the alert resolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_first_member_stopped_acks_notices_and_verify_polls_use_the_second() {
    let receiver = Receiver::start().await;
    let port = free_port();
    let mut pair = AlertmanagerPair::start(&format!("http://127.0.0.1:{port}/alert"), &receiver.url);
    let fake = Arc::new(autoheal_containers::FakeRuntime::new());
    fake.add_running("crm-api", Duration::from_secs(3600));
    let urls = pair.urls.clone();
    let host = ServedHost::start_on(
        port,
        &[crm_plugin_with("[verify]\nwithin = \"1m\""), ghost_plugin()],
        fake,
        move |c| {
            real(c);
            c.alertmanager_url = urls.into();
            c.notify.enabled = true;
        },
    )
    .await;
    let status = host.get_ok("/").await;
    assert_eq!(status["alertmanager_url"], pair.urls[0].as_str(), "{status:#}");
    assert_eq!(status["alertmanager_urls"], json!(pair.urls), "{status:#}");

    pair.stop(0);
    let survivor = pair.member(1);

    // An alert as Prometheus sends it to the member left: autoheal acts on
    // it and watches it.
    let labels = json!({ "alertname": "TcpEndpointDownFast", "service": "crm-api" });
    survivor.push(labels.clone(), json!({ "autoheal": "true" }), None);
    host.wait_for("action_ok", 1, WAIT).await;
    let watching_since = Instant::now();

    // Ack: the silence is created on the second member.
    let url = host.url.clone();
    let body = json!({ "labels": { "alertname": "CrmMaintenance" }, "duration": "1h" });
    let (status, reply) =
        tokio::task::spawn_blocking(move || http(&url, "POST", "/ack", &body.to_string()).unwrap())
            .await
            .unwrap();
    assert_eq!(status, 200, "{reply}");
    let id = reply["silence_id"].as_str().unwrap().to_owned();
    assert!(
        reply["url"].as_str().unwrap().starts_with(&survivor.url),
        "the silence's link is the member that made it: {reply}"
    );
    let (status, silences) = http(&survivor.url, "GET", "/api/v2/silences", "").unwrap();
    assert_eq!(status, 200);
    assert!(
        silences
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == id.as_str()),
        "{silences:#}"
    );

    // The operations view reads the firing alerts from the second member.
    let vision = host.get_ok("/vision").await;
    assert_eq!(vision["alertmanager"]["reachable"], true, "{vision:#}");
    assert_eq!(vision["alertmanager"]["url"], survivor.url.as_str(), "{vision:#}");

    // A notice: posted to both members, taken by the second, delivered.
    survivor.push(
        json!({ "alertname": "GhostDown" }),
        json!({ "autoheal": "true" }),
        None,
    );
    host.wait_for("action_fail", 1, WAIT).await;
    let failed = receiver.wait_for("AutohealActionFailed", "firing").await;
    assert_eq!(failed["labels"]["plugin"], "restart-ghost", "{failed:#}");
    let metrics = host.host.metrics.render(1, &[], &[]);
    assert!(sample(&metrics, "autoheal_notifications_total{outcome=\"ok\"}") >= 1.0);

    // The verify poll (every 2 s) has listed the alert on the second
    // member; resolved there, and with no resolved webhook (the pair does
    // not send them), the next poll is what verifies the action.
    let listed = Duration::from_secs(5).saturating_sub(watching_since.elapsed());
    tokio::time::sleep(listed).await;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    survivor.push(labels, json!({ "autoheal": "true" }), Some(&now));
    let verified = host.wait_for("remediation_verified", 1, WAIT).await.remove(0);
    assert_eq!(verified["via"], "alertmanager", "{verified:#}");
    assert_eq!(verified["plugin"], "restart-crm-api", "{verified:#}");
}

/// An alert kept after its engine did not answer, then resolved in
/// Alertmanager with no resolved webhook (the pair sends none, as one lost
/// while autoheal was down): when it comes due the host asks Alertmanager,
/// finds it no longer listed, and ends it as resolved instead of acting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alert_that_resolved_in_alertmanager_is_not_tried_again() {
    let receiver = crate::notify::Receiver::start().await;
    let port = free_port();
    let pair = AlertmanagerPair::start(&format!("http://127.0.0.1:{port}/alert"), &receiver.url);
    let dir = tempfile::tempdir().unwrap();
    // An engine that never answers: nothing listens on its socket.
    let gone: Arc<dyn autoheal_containers::ContainerRuntime> =
        Arc::new(autoheal_containers::DockerRuntime::new(
            autoheal_containers::EngineAddress::Unix(dir.path().join("engine.sock")),
            Duration::from_secs(2),
        ));
    let plugin = manifest(
        "restart-api",
        "restart_container.wasm",
        &["EngineGone"],
        &["api"],
        "[config]\ncontainer = \"api\"\nmin_uptime_sec = 0",
    );
    let urls = pair.urls.clone();
    let host = ServedHost::start_on(port, &[("api.toml", plugin)], gone, move |c| {
        real(c);
        c.alertmanager_url = urls.into();
    })
    .await;
    let labels = json!({ "alertname": "EngineGone" });
    pair.member(0)
        .push(labels.clone(), json!({ "autoheal": "true" }), None);
    let kept = host.wait_for("alert_deferred", 1, WAIT).await.remove(0);
    assert_eq!(kept["retry"]["reason"], "engine_unreachable", "{kept:#}");

    // Resolved before it is tried again (after 5 s).
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    pair.member(0)
        .push(labels, json!({ "autoheal": "true" }), Some(&now));
    let ended = host.wait_for("decision_skip", 1, WAIT).await.remove(0);
    assert_eq!(ended["reason"], "resolved", "{ended:#}");
    assert_eq!(ended["fingerprint"], kept["fingerprint"], "{ended:#}");
    assert!(
        ended["detail"]
            .as_str()
            .unwrap()
            .contains("Alertmanager no longer lists"),
        "{ended:#}"
    );
    assert_eq!(host.audit("action_started").await.len(), 1, "not tried again");
    assert!(host.audit("deferred_due").await.is_empty());
    assert_eq!(host.get_ok("/").await["deferred"], json!([]));
}
