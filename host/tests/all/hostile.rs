//! A hostile plugin, a hostile sender and a hostile plugins directory,
//! through the real server on loopback: each is stopped at its bound, says
//! so in its event, and the host goes on serving.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::real::{Podman, ServedHost, free_port, http, unique};
use crate::support::*;

/// The served host with the misbehaving fixture installed under `plugins`.
async fn with_fixtures(
    plugins: &[(&str, String)],
    containers: Arc<dyn autoheal_containers::ContainerRuntime>,
    configure: impl FnOnce(&mut autoheal::config::RawConfig),
) -> ServedHost {
    let host = ServedHost::start(&[], containers, configure).await;
    let dir = host.host.config.plugins_dir.clone();
    std::fs::copy(guest("misbehave"), dir.join("misbehave.wasm")).unwrap();
    for (file, text) in plugins {
        std::fs::write(dir.join(file), text).unwrap();
    }
    let (status, reply) = post(&host, "/plugins/reload", "").await;
    assert_eq!(status, 200, "{reply}");
    host
}

async fn post(host: &ServedHost, path: &str, body: &str) -> (u16, Value) {
    let (url, path, body) = (host.url.clone(), path.to_owned(), body.to_owned());
    tokio::task::spawn_blocking(move || http(&url, "POST", &path, &body).unwrap())
        .await
        .unwrap()
}

async fn get(host: &ServedHost, path: &str) -> (u16, Value) {
    let (url, path) = (host.url.clone(), path.to_owned());
    tokio::task::spawn_blocking(move || http(&url, "GET", &path, "").unwrap())
        .await
        .unwrap()
}

fn webhook(alerts: Value) -> String {
    json!({ "version": "4", "status": "firing", "receiver": "autoheal", "alerts": alerts }).to_string()
}

/// The longest line of the audit trail, in bytes.
fn longest_audit_line(host: &ServedHost) -> usize {
    std::fs::read_to_string(&host.host.config.audit_path)
        .unwrap()
        .lines()
        .map(str::len)
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_names_past_their_bounds_are_cut_and_the_host_goes_on() {
    let plugins = [
        (
            "big_result.toml",
            fixture("BigResult", "big_result", "memory_mb = 64", ""),
        ),
        (
            "big_error.toml",
            fixture("BigError", "big_error", "memory_mb = 64", ""),
        ),
        (
            "long_names.toml",
            fixture("LongNames", "long_names", "memory_mb = 64", ""),
        ),
        ("fine.toml", fixture("Fine", "ok", "", "")),
    ];
    let host = with_fixtures(&plugins, Arc::new(autoheal_containers::NoEngine), |_| {}).await;
    host.post_alerts(json!([
        opted_in("BigResult"),
        opted_in("BigError"),
        opted_in("LongNames")
    ]))
    .await;
    // Another plugin answers meanwhile.
    host.post_alerts(json!([opted_in("Fine")])).await;
    let done = host
        .wait_for("action_dry_run,action_fail", 4, Duration::from_secs(60))
        .await;
    let by_plugin = |name: &str| done.iter().find(|e| e["plugin"] == name).cloned().unwrap();

    let fine = by_plugin("Fine");
    assert_eq!(fine["output"], "ok");
    assert!(fine.get("truncated").is_none(), "{fine}");

    let big = by_plugin("BigResult");
    let output = big["output"].as_str().unwrap();
    assert!(output.len() < 70 * 1024, "{} bytes kept", output.len());
    assert!(
        output.ends_with("[truncated: 8388608 bytes, 65536 kept]"),
        "{}",
        &output[output.len() - 60..]
    );
    assert_eq!(big["truncated"], json!(["result"]));

    let error = by_plugin("BigError");
    assert_eq!(error["kind"], "action_fail");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("[truncated: 8388608 bytes"),
        "error not cut"
    );
    assert_eq!(error["truncated"], json!(["result"]));

    // 1 MiB names: refused by length, recorded without their bytes, within the call budget.
    let names = by_plugin("LongNames");
    assert_eq!(names["output"], "refused=100");
    assert_eq!(names["truncated"], json!(["target"]));
    let calls = names["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 64, "the call budget");
    assert!(
        calls
            .iter()
            .all(|c| c["target"] == "<invalid: 1048576 bytes>" && c["outcome"] == "denied")
    );
    assert!(
        calls[0]["detail"]
            .as_str()
            .unwrap()
            .contains("not a container name (1048576 bytes)")
    );
    let denied = host.audit("capability_denied").await;
    assert_eq!(denied.len(), 64);

    // Nothing in the trail is near the sizes the plugins chose.
    let longest = longest_audit_line(&host);
    assert!(longest < 128 * 1024, "an audit line of {longest} bytes");

    let (_, metrics) = get(&host, "/metrics").await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains("autoheal_bounds_hit_total{bound=\"result\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("autoheal_bounds_hit_total{bound=\"target\"} 1"),
        "{metrics}"
    );
}

/// 1,000 restart calls against a real container in real mode: the restart
/// circuit breaker lets three through, the call budget ends the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_storm_against_a_real_container_is_held_by_the_breaker() {
    let podman = Podman::start();
    let container = unique("storm");
    podman.run_httpd(&container, free_port());
    let storm = manifest(
        "Storm",
        "misbehave.wasm",
        &["Storm"],
        &[&container],
        &format!(
            "[limits]\ntimeout_ms = 60000\nstop_timeout_sec = 0\n[config]\nmode = \"restart_storm\"\ncontainer = {container:?}"
        ),
    );
    let host = with_fixtures(&[("storm.toml", storm)], podman.runtime(), real).await;
    let before = podman.started_at(&container);
    host.post_alerts(json!([opted_in("Storm")])).await;
    let done = host
        .wait_for("action_ok,action_fail", 1, Duration::from_secs(90))
        .await;
    let event = &done[0];
    assert_eq!(event["output"], "restarted=3", "{event:#}");
    let calls = event["calls"].as_array().unwrap();
    let outcome = |o: &str| calls.iter().filter(|c| c["outcome"] == o).count();
    assert_eq!(outcome("ok"), 3);
    assert_eq!(outcome("circuit_open"), 61);
    assert_eq!(calls.len(), 64);
    assert!(
        calls.iter().all(|c| c["target"] == container.as_str()),
        "only the allowed container"
    );
    // The three went to the real engine, and the container is up again.
    assert_ne!(
        podman.started_at(&container),
        before,
        "the container was restarted"
    );
    let breaker = host.audit("capability_denied").await;
    assert_eq!(breaker.len(), 61);
    assert!(breaker.iter().all(|e| e["reason"] == "circuit_open"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_or_a_huge_manifest_in_the_plugins_dir_is_skipped_and_reload_goes_on() {
    let host = with_fixtures(
        &[("fine.toml", fixture("Fine", "ok", "", ""))],
        Arc::new(autoheal_containers::NoEngine),
        |_| {},
    )
    .await;
    let dir = host.host.config.plugins_dir.clone();
    let fifo = dir.join("x.toml");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // A 50 MB description, which GET / would echo.
    let huge = format!("name = \"Huge\"\ndescription = \"{}\"\n", "d".repeat(50 << 20));
    std::fs::write(dir.join("huge.toml"), huge).unwrap();

    // Neither blocks the rescan (the HTTP client gives up after 10 s).
    let (status, reply) = post(&host, "/plugins/reload", "").await;
    assert_eq!(status, 200, "{reply}");
    let rejected: Vec<&str> = reply["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(rejected, ["huge.toml", "x.toml"], "{reply}");
    let reasons: Vec<Value> = host
        .audit("plugin_rejected")
        .await
        .iter()
        .map(|e| e["reason"].clone())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().unwrap().contains("not a regular file")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().unwrap().contains("at most 65536")),
        "{reasons:?}"
    );

    // And the scan after it still loads what is new.
    std::fs::write(dir.join("late.toml"), fixture("Late", "ok", "", "")).unwrap();
    let (status, reply) = post(&host, "/plugins/reload", "").await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["loaded"], json!(["Late"]));
    let (_, status_page) = get(&host, "/").await;
    assert!(status_page.to_string().len() < 64 * 1024, "GET / is small");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_is_not_the_pinned_one_is_rejected() {
    let pinned = |hash: &str| {
        fixture("Pinned", "ok", "", "").replace("[match]", &format!("sha256 = {hash:?}\n[match]"))
    };
    let real_hash = autoheal_core::util::sha256_hex(&std::fs::read(guest("misbehave")).unwrap());
    let host = with_fixtures(
        &[
            ("good.toml", pinned(&real_hash)),
            ("bad.toml", pinned(&"0".repeat(64)).replace("Pinned", "Tampered")),
        ],
        Arc::new(autoheal_containers::NoEngine),
        |_| {},
    )
    .await;
    assert!(host.remediator.plugins().get("Pinned").is_some());
    assert!(host.remediator.plugins().get("Tampered").is_none());
    let rejected = host.audit("plugin_rejected").await;
    let reason = rejected[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("pins 0000") && reason.contains(&real_hash),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_cannot_amplify_a_webhook_or_grow_the_metrics() {
    let host = ServedHost::start(
        &[("crm.toml", bundled_manifest())],
        Arc::new(autoheal_containers::NoEngine),
        |_| {},
    )
    .await;

    // 52,000 alerts in one body under 1 MiB: 1,000 decided, the rest counted.
    let many: Vec<Value> = (0..52_000).map(|_| json!({"status": "firing"})).collect();
    let body = webhook(Value::Array(many));
    assert!(body.len() < 1 << 20);
    let (status, reply) = post(&host, "/alert", &body).await;
    assert_eq!(status, 200);
    assert_eq!(reply["received"], 1000);
    host.remediator.drain().await;
    let received = host.audit("webhook_received").await;
    assert_eq!(received[0]["alerts"], 1000);
    assert_eq!(received[0]["truncated_alerts"], 51_000);

    // An alertname of 200 KB, or more labels than allowed: refused, and the
    // rejection does not repeat the sender's bytes.
    let long = json!([{ "status": "firing", "labels": { "alertname": "a".repeat(200 * 1024) } }]);
    let (status, reply) = post(&host, "/alert", &webhook(long)).await;
    assert_eq!(status, 422, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("max_label_bytes"),
        "{reply}"
    );
    let labels: serde_json::Map<String, Value> = (0..65).map(|i| (format!("l{i}"), json!("v"))).collect();
    let wide = json!([{ "status": "firing", "labels": labels }]);
    let (status, reply) = post(&host, "/alert", &webhook(wide)).await;
    assert_eq!(status, 422, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("max_labels_per_alert"),
        "{reply}"
    );
    // The alert's other strings are held and recorded too: each is bounded
    // like a label, and counted under the same bound.
    for field in ["startsAt", "endsAt", "generatorURL", "fingerprint"] {
        let mut alert = json!({ "status": "firing", "labels": { "alertname": "Big" } });
        alert[field] = json!("2".repeat(5000));
        let (status, reply) = post(&host, "/alert", &webhook(json!([alert]))).await;
        assert_eq!(status, 422, "{field}: {reply}");
        let error = reply["error"].as_str().unwrap();
        assert!(
            error.contains("max_label_bytes") && error.len() < 2048,
            "{field}: {error}"
        );
    }
    // A parser error that would quote a huge value is cut.
    let (status, reply) = post(
        &host,
        "/alert",
        &format!("{{\"alerts\": [{{\"status\": \"{}\"}}]}}", "x".repeat(300_000)),
    )
    .await;
    assert_eq!(status, 422);
    assert!(reply["error"].as_str().unwrap().len() < 2048);

    // 40 unique alertnames no manifest names share one series.
    let unknown: Vec<Value> = (0..40).map(|i| opted_in(&format!("Unknown{i}"))).collect();
    host.post_alerts(Value::Array(unknown)).await;
    host.remediator.drain().await;
    let (_, metrics) = get(&host, "/metrics").await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        !metrics.contains("Unknown"),
        "unknown alertnames have series of their own"
    );
    assert!(
        sample(
            &metrics,
            "autoheal_actions_total{alertname=\"(other)\",mode=\"\",result=\"skip\"}"
        ) >= 1.0
    );
    assert!(
        metrics.contains("autoheal_bounds_hit_total{bound=\"webhook_alerts\"} 51000"),
        "{metrics}"
    );
    assert!(
        metrics.contains("autoheal_bounds_hit_total{bound=\"alert_size\"} 6"),
        "{metrics}"
    );
    assert!(longest_audit_line(&host) < 16 * 1024);
}

pub(crate) fn looping(name: &str, extra_limits: &str) -> String {
    manifest(
        name,
        "misbehave.wasm",
        &[name],
        &["crm-api"],
        &format!(
            "[limits]\ntimeout_ms = 400\nstop_timeout_sec = 0\n{extra_limits}\n\
             [cooldown_key]\nlabels = [\"instance\"]\n[config]\nmode = \"loop\""
        ),
    )
}

pub(crate) fn on_instance(alertname: &str, instance: &str) -> Value {
    let mut alert = opted_in(alertname);
    alert["labels"]["instance"] = json!(instance);
    alert
}

fn reasons(decisions: &[Value]) -> Vec<String> {
    decisions
        .iter()
        .map(|d| {
            d.get("reason")
                .and_then(Value::as_str)
                .unwrap_or("act")
                .to_owned()
        })
        .collect()
}

/// A plugin that hangs cannot pile up actions: past its own bound they
/// wait in the queue (they do not run beside it), and past the host's
/// bound on pending actions they are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_actions_are_bounded_per_plugin_and_in_all() {
    let h = harness(&[("slow.toml", looping("Slow", "max_concurrent = 1"))], |c| {
        c.default_cooldown_sec = 0
    })
    .await;
    let decisions = h
        .process(json!([
            on_instance("Slow", "a"),
            on_instance("Slow", "b"),
            on_instance("Slow", "c")
        ]))
        .await;
    let decided: Vec<&str> = decisions
        .iter()
        .map(|d| d["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decided, ["act", "queued", "queued"]);
    let queued = &h.events(&["action_queued"])[0];
    assert!(
        queued["waiting_for"]
            .as_str()
            .unwrap()
            .contains("limits.max_concurrent"),
        "{queued}"
    );

    let plugins = [
        ("a.toml", looping("A", "")),
        ("b.toml", looping("B", "")),
        ("c.toml", looping("C", "")),
    ];
    let h = harness(&plugins, |c| c.max_pending_actions = 2).await;
    let decisions = h
        .process(json!([opted_in("A"), opted_in("B"), opted_in("C")]))
        .await;
    assert_eq!(reasons(&decisions), ["act", "act", "overloaded"]);
    let skip = h.only("decision_skip");
    assert!(
        skip["detail"].as_str().unwrap().contains("max_pending_actions"),
        "{skip}"
    );
    assert!(
        h.events(&["action_started"]).len() == 2,
        "no cooldown or action for the refused one"
    );
}

/// An alert that finds no room is not answered 200 and forgotten: the
/// webhook gets a 503 (Alertmanager sends the group again), the others of it
/// are decided and acted on, and the refusal is in the trail and the metrics.
/// The host keeps the refused one (across a restart) and decides it again
/// itself once there is room, without waiting for Alertmanager;
/// Alertmanager's retry then finds both in their cooldowns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_with_an_alert_that_found_no_room_is_answered_503_and_retried() {
    let host = ServedHost::start_staged(
        0,
        &["misbehave"],
        &[("slow.toml", looping("Slow", ""))],
        Arc::new(autoheal_containers::NoEngine),
        |c| c.max_pending_actions = 1,
    )
    .await;
    let body = json!({
        "version": "4", "status": "firing", "receiver": "autoheal",
        "alerts": [on_instance("Slow", "a"), on_instance("Slow", "b")]
    })
    .to_string();
    let (status, answer) = post(&host, "/alert", &body).await;
    assert_eq!(status, 503, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains("1 of 2") && error.contains("overloaded"),
        "{error}"
    );
    let skips = host.audit("decision_skip").await;
    assert_eq!(skips.len(), 1, "{skips:#?}");
    assert_eq!(skips[0]["reason"], "overloaded");
    let first = host.audit("action_started").await;
    let fingerprints: Vec<String> = [&first[0], &skips[0]]
        .iter()
        .map(|e| e["fingerprint"].as_str().unwrap().to_owned())
        .collect();
    let kept = host.audit("alert_deferred").await;
    assert_eq!(kept.len(), 1, "{kept:#?}");
    assert_eq!(kept[0]["retry"]["reason"], "overloaded", "{kept:#?}");
    assert_eq!(kept[0]["alert"]["labels"]["instance"], "b", "{kept:#?}");
    assert!(
        kept[0]["until"].as_f64().unwrap() - kept[0]["ts"].as_f64().unwrap() >= 4.9,
        "tried again after 5 s: {kept:#?}"
    );

    let (_, metrics) = get(&host, "/metrics").await;
    assert_eq!(
        sample(
            metrics.as_str().unwrap(),
            "autoheal_webhook_requests_total{status=\"503\"}"
        ),
        1.0
    );

    // A restart meanwhile does not lose it.
    let host = host.restart().await;
    let page = host.get_ok("/").await;
    assert_eq!(page["deferred"][0]["retry"], "overloaded", "{page:#}");
    assert_eq!(page["deferred"][0]["until"], kept[0]["until"], "{page:#}");

    // The first one's loop has ended at its deadline; the host decides the
    // kept one again by itself and acts on it.
    host.wait_for("action_fail", 2, Duration::from_secs(60)).await;
    let due = host.audit("deferred_due").await;
    assert_eq!(due[0]["held"][0]["plugin"], "Slow", "{due:#?}");
    let started = host.audit("action_started").await;
    let mut acted_on: Vec<&str> = started
        .iter()
        .map(|e| e["fingerprint"].as_str().unwrap())
        .collect();
    acted_on.sort();
    let mut alerts: Vec<&str> = fingerprints.iter().map(String::as_str).collect();
    alerts.sort();
    assert_eq!(acted_on, alerts, "each alert acted on once: {started:#?}");

    // Alertmanager's retry: both are in their cooldown.
    let (status, answer) = post(&host, "/alert", &body).await;
    assert_eq!(status, 200, "{answer}");
    let decided: Vec<&str> = answer["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["reason"].as_str().unwrap_or("act"))
        .collect();
    assert_eq!(decided, ["cooldown", "cooldown"], "{answer}");

    let (_, metrics) = get(&host, "/metrics").await;
    let metrics = metrics.as_str().unwrap();
    assert_eq!(
        sample(metrics, "autoheal_webhook_requests_total{status=\"200\"}"),
        1.0,
        "since the restart"
    );
}

/// Webhooks past `max_concurrent_webhooks` are shed with a 503 that
/// Alertmanager retries, not queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_past_the_concurrency_bound_get_a_503() {
    use std::io::{Read, Write};
    let host = ServedHost::start(
        &[("crm.toml", bundled_manifest())],
        Arc::new(autoheal_containers::NoEngine),
        |c| c.max_concurrent_webhooks = 1,
    )
    .await;
    let addr = host.url.trim_start_matches("http://").to_owned();
    let body = webhook(json!([opted_in("TcpEndpointDownFast")]));
    let slow = {
        let (addr, body) = (addr.clone(), body.clone());
        tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(&addr).unwrap();
            write!(
                stream,
                "POST /alert HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {WEBHOOK_TOKEN}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                body.len(),
                &body[..10]
            )
            .unwrap();
            stream.flush().unwrap();
            // Hold the request open (its body unfinished) while the next one comes.
            std::thread::sleep(Duration::from_millis(1500));
            stream.write_all(&body.as_bytes()[10..]).unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            answer
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, reply) = post(&host, "/alert", &body).await;
    assert_eq!(status, 503, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("max_concurrent_webhooks"),
        "{reply}"
    );
    let first = slow.await.unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // Once the first is answered, webhooks are taken again.
    let (status, _) = post(&host, "/alert", &body).await;
    assert_eq!(status, 200);
    let rejected = host.audit("webhook_rejected").await;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["status"], 503);
}

/// What the sandbox already stops, through the real server all at once:
/// each is stopped and says why, a well-behaved plugin answers meanwhile,
/// and the host goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loops_bombs_recursion_floods_and_escapes_through_the_real_server() {
    let modes = [
        ("Loop", "loop", "timeout_ms = 300"),
        ("Bomb", "alloc", "memory_mb = 8"),
        ("Deep", "recursion", ""),
        ("Flood", "log_flood", ""),
        ("Panic", "panic", ""),
        ("Files", "read_file", ""),
        ("Env", "env", ""),
        ("Socket", "socket", ""),
    ];
    let mut plugins: Vec<(String, String)> = modes
        .iter()
        .map(|(name, mode, limits)| (format!("{name}.toml"), fixture(name, mode, limits, "")))
        .collect();
    plugins.push(("Fine.toml".into(), fixture("Fine", "ok", "", "")));
    let plugins: Vec<(&str, String)> = plugins.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    let host = with_fixtures(&plugins, Arc::new(autoheal_containers::NoEngine), |c| {
        c.sandbox.max_concurrent = 16
    })
    .await;
    let mut alerts: Vec<Value> = modes.iter().map(|(name, _, _)| opted_in(name)).collect();
    alerts.push(opted_in("Fine"));
    host.post_alerts(Value::Array(alerts)).await;
    let done = host
        .wait_for("action_dry_run,action_fail", 9, Duration::from_secs(60))
        .await;
    let of = |name: &str| done.iter().find(|e| e["plugin"] == name).cloned().unwrap();

    assert_eq!(of("Fine")["output"], "ok");
    assert_eq!(of("Loop")["reason"], "timeout");
    assert_eq!(of("Bomb")["reason"], "memory");
    // A Rust guest's stack lives in linear memory: running it out is an
    // out-of-bounds write, reported as the stack overflow it is.
    assert!(
        of("Deep")["reason"]
            .as_str()
            .unwrap()
            .starts_with("trap: stack overflow"),
        "{}",
        of("Deep")
    );
    assert!(of("Panic")["reason"].as_str().unwrap().starts_with("trap"));
    let flood = of("Flood");
    assert_eq!(flood["output"], "logged");
    assert_eq!(
        flood["logs"].as_array().unwrap().len(),
        101,
        "100 lines and a note of the rest"
    );
    assert_eq!(of("Files")["output"], "file=denied");
    assert_eq!(of("Socket")["output"], "socket=denied");
    assert_eq!(of("Env")["output"], "env=0 args=0");
    assert!(longest_audit_line(&host) < 256 * 1024);
    let (status, _) = get(&host, "/").await;
    assert_eq!(status, 200, "the host goes on serving");
}

/// Pool slots are reset in place (not unmapped) between invocations: each
/// invocation still starts from the component's initial memory, with
/// nothing left by the one before it in the same slot (few slots, so they
/// are reused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_sees_nothing_of_the_one_before_it() {
    let plugins = [(
        "Memory.toml",
        fixture("Memory", "remember", "cooldown = \"0s\"", ""),
    )];
    let host = with_fixtures(&plugins, Arc::new(autoheal_containers::NoEngine), |c| {
        c.sandbox.max_concurrent = 1
    })
    .await;
    for round in 1..=12 {
        host.post_alerts(json!([opted_in("Memory")])).await;
        let done = host
            .wait_for("action_dry_run,action_fail", round, Duration::from_secs(30))
            .await;
        let outputs: Vec<&Value> = done.iter().map(|e| &e["output"]).collect();
        assert!(
            outputs.iter().all(|o| *o == "calls=1 dirty=false"),
            "round {round}: {outputs:?}"
        );
    }
}
