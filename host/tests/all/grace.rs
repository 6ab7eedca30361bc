//! Grace before acting (issue 31): a plugin with `[match] firing_for`
//! holds an alert younger than that (`deferred`, `alert_deferred`) and
//! autoheal decides it afresh when it is due, without another webhook;
//! unless it resolved first. A re-sent copy does not hold (or act) twice, an
//! old alert acts at once, other plugins on the same alert do not wait, and
//! a hold survives a restart of the host. Through the real server, over
//! loopback, with a fake container engine.

use std::sync::Arc;
use std::time::Duration;

use autoheal_containers::FakeRuntime;
use serde_json::{Value, json};

use crate::real::*;
use crate::support::*;

/// restart-container on crm-api for `TcpEndpointDownFast`, acting only
/// on an alert firing for `firing_for` (none: at once).
fn crm_plugin_named(name: &str, firing_for: Option<&str>) -> String {
    let text = manifest(
        name,
        "restart_container.wasm",
        &["TcpEndpointDownFast"],
        &["crm-api"],
        &format!("{NO_TARGET_COOLDOWN}\n[config]\ncontainer = \"crm-api\"\nmin_uptime_sec = 0"),
    );
    match firing_for {
        Some(grace) => text.replacen(
            "[capabilities]",
            &format!("firing_for = {grace:?}\n[capabilities]"),
            1,
        ),
        None => text,
    }
}

fn patient(firing_for: &str) -> (&'static str, String) {
    ("patient.toml", crm_plugin_named("patient", Some(firing_for)))
}

fn fake() -> Arc<FakeRuntime> {
    let fake = Arc::new(FakeRuntime::new());
    fake.add_running("crm-api", Duration::from_secs(3600));
    fake
}

async fn served(plugins: &[(&str, String)], fake: &Arc<FakeRuntime>) -> ServedHost {
    ServedHost::start(plugins, fake.clone(), real).await
}

/// A firing, opted-in `TcpEndpointDownFast` that started `ago` seconds ago.
fn firing_since(ago: f64) -> Value {
    let mut alert = opted_in("TcpEndpointDownFast");
    let started = autoheal_core::util::unix_now() - ago;
    let started = chrono::DateTime::from_timestamp_micros((started * 1e6) as i64).unwrap();
    alert["startsAt"] = json!(started.to_rfc3339());
    alert
}

fn decisions(reply: &Value) -> Vec<Value> {
    reply["decisions"].as_array().cloned().unwrap_or_default()
}

fn the_decision_of<'a>(decisions: &'a [Value], plugin: &str) -> &'a Value {
    decisions
        .iter()
        .find(|d| d["plugin"] == plugin)
        .unwrap_or_else(|| panic!("no decision of {plugin}: {decisions:#?}"))
}

async fn status(host: &ServedHost) -> Value {
    host.get_ok("/").await
}

async fn metrics(host: &ServedHost) -> String {
    host.get_ok("/metrics").await.as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_young_alert_is_held_then_acted_on_when_due_without_another_webhook() {
    let fake = fake();
    let eager = ("eager.toml", crm_plugin_named("eager", None));
    let host = served(&[patient("2s"), eager], &fake).await;
    assert_eq!(sample(&metrics(&host).await, "autoheal_deferred_alerts"), 0.0);

    let sent = autoheal_core::util::unix_now();
    let reply = host.post_alerts(json!([firing_since(0.0)])).await;
    let decisions = decisions(&reply);
    let held = the_decision_of(&decisions, "patient");
    assert_eq!(held["decision"], "deferred", "{reply:#}");
    let until = held["deferred_until"].as_f64().unwrap();
    assert!(
        (until - (sent + 2.0)).abs() < 1.0,
        "held for the grace: {reply:#}"
    );
    // Only the plugin with the grace waits.
    assert_eq!(
        the_decision_of(&decisions, "eager")["decision"],
        "act",
        "{reply:#}"
    );

    let deferred = host.audit("alert_deferred").await;
    assert_eq!(deferred.len(), 1, "{deferred:#?}");
    assert_eq!(deferred[0]["plugin"], "patient");
    assert_eq!(deferred[0]["until"].as_f64(), Some(until));
    assert_eq!(deferred[0]["alert"]["labels"]["alertname"], "TcpEndpointDownFast");
    let page = status(&host).await;
    assert_eq!(page["deferred"][0]["plugin"], "patient", "{page:#}");
    assert_eq!(page["deferred"][0]["until"].as_f64(), Some(until), "{page:#}");
    assert_eq!(page["plugins"].as_array().unwrap().len(), 2, "{page:#}");
    assert_eq!(sample(&metrics(&host).await, "autoheal_deferred_alerts"), 1.0);

    // No other webhook: autoheal wakes itself when the grace has passed.
    let started = host.wait_for("action_started", 2, Duration::from_secs(10)).await;
    let patient_started = started.iter().find(|e| e["plugin"] == "patient").unwrap();
    assert!(patient_started["id"].as_u64() > deferred[0]["id"].as_u64());
    let acted_at = patient_started["ts"].as_f64().unwrap();
    assert!(
        acted_at >= until - 0.01,
        "not before its time: {acted_at} < {until}"
    );
    assert!(acted_at < until + 3.0, "about when due: {acted_at} vs {until}");
    let due = host.audit("deferred_due").await;
    assert_eq!(due.len(), 1, "{due:#?}");
    assert_eq!(due[0]["held"][0]["plugin"], "patient");
    assert_eq!(due[0]["decisions"], 1, "its decision follows it: {due:#?}");
    host.wait_for("action_ok", 2, Duration::from_secs(10)).await;
    assert_eq!(fake.restarts().len(), 2, "one restart each");
    assert_eq!(status(&host).await["deferred"], json!([]));
    assert_eq!(sample(&metrics(&host).await, "autoheal_deferred_alerts"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_alert_that_resolves_first_is_not_acted_on() {
    let fake = fake();
    let host = served(&[patient("2s")], &fake).await;
    let reply = host.post_alerts(json!([firing_since(0.0)])).await;
    assert_eq!(decisions(&reply)[0]["decision"], "deferred", "{reply:#}");

    let mut resolved = firing_since(0.0);
    resolved["status"] = json!("resolved");
    host.post_alerts(json!([resolved])).await;
    let dropped: Vec<Value> = host
        .audit("decision_skip")
        .await
        .into_iter()
        .filter(|e| e["plugin"] == "patient")
        .collect();
    assert_eq!(dropped.len(), 1, "{dropped:#?}");
    assert_eq!(dropped[0]["reason"], "resolved");
    assert_eq!(status(&host).await["deferred"], json!([]));

    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(host.audit("action_started,deferred_due").await.is_empty());
    assert!(fake.restarts().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_firing_longer_than_the_grace_acts_at_once() {
    let fake = fake();
    let host = served(&[patient("2s")], &fake).await;
    let reply = host.post_alerts(json!([firing_since(600.0)])).await;
    let decision = &decisions(&reply)[0];
    assert_eq!(decision["decision"], "act", "{reply:#}");
    assert!(decision.get("deferred_until").is_none(), "{reply:#}");
    host.remediator.drain().await;
    assert_eq!(host.audit("action_ok").await.len(), 1);
    assert!(host.audit("alert_deferred").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_re_sent_while_held_keeps_the_first_hold_and_acts_once() {
    let fake = fake();
    // A grace long enough that the copy, 0.7 s later, arrives within it
    // however loaded the machine is.
    let host = served(&[patient("5s")], &fake).await;
    let alert = firing_since(0.0);
    let first = host.post_alerts(json!([alert.clone()])).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let again = host.post_alerts(json!([alert])).await;
    let until = |reply: &Value| decisions(reply)[0]["deferred_until"].as_f64();
    assert_eq!(decisions(&again)[0]["decision"], "deferred", "{again:#}");
    assert_eq!(until(&again), until(&first), "the earlier until stands");
    assert_eq!(status(&host).await["deferred"].as_array().unwrap().len(), 1);

    host.wait_for("action_ok", 1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(host.audit("action_started").await.len(), 1);
    assert_eq!(host.audit("deferred_due").await.len(), 1);
    assert_eq!(fake.restarts().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_survives_a_restart_of_the_host() {
    let fake = fake();
    let host = served(&[patient("3s")], &fake).await;
    let reply = host.post_alerts(json!([firing_since(0.0)])).await;
    assert_eq!(decisions(&reply)[0]["decision"], "deferred", "{reply:#}");
    let until = decisions(&reply)[0]["deferred_until"].as_f64().unwrap();

    let host = host.restart().await;
    let started = host.audit("host_started").await;
    assert_eq!(started.len(), 2, "{started:#?}");
    if autoheal_core::util::unix_now() < until - 0.5 {
        let page = status(&host).await;
        assert_eq!(
            page["deferred"][0]["until"].as_f64(),
            Some(until),
            "held again: {page:#}"
        );
    }
    let acted = host.wait_for("action_started", 1, Duration::from_secs(10)).await;
    assert!(
        acted[0]["id"].as_u64() > started[1]["id"].as_u64(),
        "acted on by the new host"
    );
    assert!(acted[0]["ts"].as_f64().unwrap() >= until - 0.01);
    host.wait_for("action_ok", 1, Duration::from_secs(10)).await;
    assert_eq!(fake.restarts().len(), 1);

    // Decided: a second restart does not hold it again.
    let host = host.restart().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status(&host).await["deferred"], json!([]));
    assert_eq!(host.audit("action_started").await.len(), 1);
}

/// The console's "Held" panel lists the held alert, with its plugin and a
/// countdown to when it is decided, and empties once it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_lists_held_alerts_with_when_they_are_decided() {
    use crate::console::Browser;
    let fake = fake();
    let host = served(&[patient("6s")], &fake).await;
    let reply = host.post_alerts(json!([firing_since(0.0)])).await;
    assert_eq!(decisions(&reply)[0]["decision"], "deferred", "{reply:#}");

    let url = host.url.clone();
    let browser = tokio::task::spawn_blocking(move || {
        let browser = Browser::start();
        browser.goto(&format!("{url}/console"));
        browser.sign_in_as_operator();
        let card = browser.wait_for(
            "the held alert in the console",
            Duration::from_secs(15),
            "const box = document.querySelector('#deferred');
             const card = box && box.querySelector('.held[data-plugin=\"patient\"]');
             const due = card && card.querySelector('.due');
             return box.dataset.count === '1' && due && due.dataset.until && card.innerText;",
        );
        let text = card.as_str().unwrap().to_owned();
        assert!(
            text.contains("TcpEndpointDownFast") && text.contains("patient") && text.contains("decided in"),
            "{text}"
        );
        browser
    })
    .await
    .unwrap();

    host.wait_for("action_ok", 1, Duration::from_secs(15)).await;
    tokio::task::spawn_blocking(move || {
        browser.wait_for(
            "the held alert to leave the console once decided",
            Duration::from_secs(20),
            "const box = document.querySelector('#deferred');
             return box.dataset.count === '0' && !box.querySelector('.held');",
        );
    })
    .await
    .unwrap();
}
