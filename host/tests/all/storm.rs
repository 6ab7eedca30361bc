//! Storms through the real server: admitted actions past a plugin's
//! `max_concurrent` wait in the queue and run when a place frees, instead of
//! being skipped as `overloaded`; a resolved alert leaves the queue; a
//! restart decides what was queued afresh; the kill switch reaches what is
//! queued. Counted from the trail (what ran), not from the answers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::hostile::{looping, on_instance};
use crate::real::{ServedHost, http};
use crate::support::{manifest, sample};

/// The plugin of these tests: it spins until its 400 ms deadline, so every
/// action takes that long and they overlap. `max_concurrent` as shipped (4).
async fn storm_host(extra_limits: &str) -> ServedHost {
    host_of(looping("Storm", extra_limits)).await
}

/// One action at a time, each spinning `timeout_ms`: long enough for a
/// test to act while the others wait.
async fn one_at_a_time(timeout_ms: u64) -> ServedHost {
    let manifest = manifest(
        "Storm",
        "misbehave.wasm",
        &["Storm"],
        &["crm-api"],
        &format!(
            "[limits]\ntimeout_ms = {timeout_ms}\nstop_timeout_sec = 0\nmax_concurrent = 1\n\
             [cooldown_key]\nlabels = [\"instance\"]\n[config]\nmode = \"loop\""
        ),
    );
    host_of(manifest).await
}

async fn host_of(manifest: String) -> ServedHost {
    ServedHost::start_staged(
        0,
        &["misbehave"],
        &[("storm.toml", manifest)],
        Arc::new(autoheal_containers::NoEngine),
        |_| {},
    )
    .await
}

fn alerts(n: usize) -> Value {
    Value::Array((0..n).map(|i| on_instance("Storm", &format!("i{i}"))).collect())
}

fn decisions(answer: &Value) -> Vec<&str> {
    answer["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["decision"].as_str().unwrap())
        .collect()
}

/// The most actions running at once, from the trail: each action runs from
/// its `action_started` to its outcome (the same alert, fingerprint by fingerprint).
fn most_at_once(started: &[Value], ended: &[Value]) -> usize {
    let mut edges: Vec<(f64, i32)> = Vec::new();
    let end_of: HashMap<&str, f64> = ended
        .iter()
        .map(|e| (e["fingerprint"].as_str().unwrap(), e["ts"].as_f64().unwrap()))
        .collect();
    for event in started {
        let fingerprint = event["fingerprint"].as_str().unwrap();
        edges.push((event["ts"].as_f64().unwrap(), 1));
        edges.push((end_of[fingerprint], -1));
    }
    // At the same instant an end comes before a start.
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0, 0);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_100_alerts_gets_100_actions_never_more_than_max_concurrent_at_once() {
    let host = storm_host("").await;
    let answer = host.post_alerts(alerts(100)).await;
    let decided = decisions(&answer);
    assert_eq!(decided.iter().filter(|d| **d == "act").count(), 4, "{answer}");
    assert_eq!(decided.iter().filter(|d| **d == "queued").count(), 96, "{answer}");

    let ended = host.wait_for("action_fail", 100, Duration::from_secs(120)).await;
    let started = host.audit("action_started").await;
    assert_eq!(started.len(), 100, "every alert's action ran");
    assert_eq!(ended.len(), 100);
    let fingerprints: std::collections::HashSet<&str> = started
        .iter()
        .map(|e| e["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(fingerprints.len(), 100, "each alert acted on once");
    assert!(
        ended.iter().all(|e| e["reason"] == "timeout"),
        "each ran to its deadline"
    );
    assert_eq!(
        most_at_once(&started, &ended),
        4,
        "never more than the plugin's max_concurrent (4) at once, and that many"
    );
    let waited: Vec<f64> = started.iter().filter_map(|e| e["queued_sec"].as_f64()).collect();
    assert_eq!(waited.len(), 96, "the queued ones say how long they waited");
    assert!(waited.iter().cloned().fold(0.0, f64::max) >= 4.0, "{waited:?}");
    let queued = host.audit("action_queued").await;
    assert_eq!(queued.len(), 96);
    assert!(
        queued[0]["waiting_for"]
            .as_str()
            .unwrap()
            .contains("max_concurrent")
    );
    assert_eq!(queued[95]["ahead"], 95, "arrival order");
    assert!(host.audit("decision_skip").await.is_empty(), "nothing skipped");

    let (_, metrics) = http(&host.url, "GET", "/metrics", "").unwrap();
    let metrics = metrics.as_str().unwrap();
    assert_eq!(sample(metrics, "autoheal_actions_queued"), 0.0);
    assert_eq!(sample(metrics, "autoheal_action_queue_wait_seconds_count"), 96.0);
    assert_eq!(
        sample(metrics, "autoheal_bounds_hit_total{bound=\"pending_actions\"}"),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_alert_leaves_the_queue_and_the_kill_switch_reaches_the_queued() {
    let host = one_at_a_time(2000).await;
    let answer = host.post_alerts(alerts(3)).await;
    assert_eq!(decisions(&answer), ["act", "queued", "queued"], "{answer}");

    // i1 resolves while it waits: it leaves the queue, its cooldown given back.
    let mut resolved = on_instance("Storm", "i1");
    resolved["status"] = json!("resolved");
    host.post_alerts(json!([resolved])).await;
    let skips = host.audit("decision_skip").await;
    let left = skips
        .iter()
        .find(|e| e["queued_at"].is_number())
        .unwrap_or_else(|| panic!("{skips:#?}"));
    assert_eq!(
        (left["reason"].as_str(), left["plugin"].as_str()),
        (Some("resolved"), Some("Storm"))
    );

    // The kill switch, set while i2 waits: it runs in dry-run.
    let (status, reply) = http(
        &host.url,
        "POST",
        "/admin/enabled",
        r#"{"enabled":false,"by":"test"}"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{reply}");
    let started = host.wait_for("action_started", 2, Duration::from_secs(20)).await;
    host.wait_for("action_fail", 2, Duration::from_secs(30)).await;
    let instances: Vec<&str> = started
        .iter()
        .map(|e| e["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(instances.len(), 2, "i1 never ran: {started:#?}");
    assert_eq!(started[1]["mode"], "dry_run", "{started:#?}");
    assert_eq!(started[1]["dry_run_reason"], "disabled", "{started:#?}");

    // The same alert, firing again, is decided afresh (no cooldown left).
    let answer = host.post_alerts(json!([on_instance("Storm", "i1")])).await;
    assert_eq!(decisions(&answer), ["act"], "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_queued_when_the_host_stops_are_decided_afresh_at_the_next_start() {
    let host = storm_host("max_concurrent = 1").await;
    let answer = host.post_alerts(alerts(3)).await;
    assert_eq!(decisions(&answer), ["act", "queued", "queued"], "{answer}");
    let host = host.restart().await;

    let dropped = host.wait_for("action_dropped", 2, Duration::from_secs(20)).await;
    assert!(
        dropped[0]["detail"].as_str().unwrap().contains("decided afresh"),
        "{dropped:#?}"
    );
    // i0 ran before the stop; i1 and i2 run after it, each once.
    host.wait_for("action_fail", 3, Duration::from_secs(30)).await;
    let started = host.audit("action_started").await;
    let mut count: HashMap<&str, usize> = HashMap::new();
    for event in &started {
        *count.entry(event["fingerprint"].as_str().unwrap()).or_default() += 1;
    }
    assert_eq!(count.len(), 3, "{started:#?}");
    assert!(count.values().all(|&n| n == 1), "{count:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_made_while_actions_wait_stops_them_at_their_turn() {
    let host = one_at_a_time(2000).await;
    let answer = host.post_alerts(alerts(2)).await;
    assert_eq!(decisions(&answer), ["act", "queued"], "{answer}");
    let (status, made) = http(
        &host.url,
        "POST",
        "/pauses",
        r#"{"plugin":"Storm","duration":"1h","reason":"release 4.2","by":"alice"}"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{made}");
    // i0 was running and finishes; i1's turn comes under the pause.
    let skips = host.wait_for("decision_skip", 1, Duration::from_secs(30)).await;
    let skip = &skips[0];
    assert_eq!(skip["reason"], "paused", "{skip}");
    assert_eq!(skip["pause_id"], made["id"], "{skip}");
    assert!(skip["queued_at"].is_number(), "{skip}");
    assert_eq!(host.audit("action_started").await.len(), 1, "only i0 ran");
    let (_, metrics) = http(&host.url, "GET", "/metrics", "").unwrap();
    assert_eq!(sample(metrics.as_str().unwrap(), "autoheal_actions_queued"), 0.0);
}
