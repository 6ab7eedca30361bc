//! Operators' pauses through the real server on loopback: a paused action
//! is skipped `paused` with the pause's id and reason and starts no
//! cooldown; pauses end when resumed or by themselves, and outlive a
//! restart of the host. (Replicas: `cluster.rs`; the command line: `cli.rs`;
//! the console: `console.rs`.)

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::real::{ServedHost, http};
use crate::support::*;

/// A host with the bundled restart plugin, one cooldown per instance.
async fn served() -> ServedHost {
    let fake = Arc::new(autoheal_containers::FakeRuntime::new());
    fake.add_running("crm-api", Duration::from_secs(3600));
    let plugin = crm_plugin_with("[cooldown_key]\nlabels = [\"instance\"]");
    ServedHost::start(&[plugin], fake, |_| {}).await
}

async fn call(url: &str, method: &'static str, path: &str, body: Value) -> (u16, Value) {
    let (url, path) = (url.to_owned(), path.to_owned());
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    tokio::task::spawn_blocking(move || http(&url, method, &path, &body).unwrap())
        .await
        .unwrap()
}

fn down(instance: &str) -> Value {
    json!([{"status": "firing",
        "labels": {"alertname": "TcpEndpointDownFast", "instance": instance, "service": "crm"},
        "annotations": {"autoheal": "true"}}])
}

/// The one decision of a webhook of one alert.
async fn decide(served: &ServedHost, instance: &str) -> Value {
    let reply = served.post_alerts(down(instance)).await;
    served.remediator.drain().await;
    reply["decisions"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_alert_is_skipped_with_the_pause_and_acts_at_once_after_the_resume() {
    let served = served().await;
    let url = &served.url;
    let (status, pause) = call(
        url,
        "POST",
        "/pauses",
        json!({"plugin": "restart-crm-api", "matchers": "instance=\"crm-api:8000\"",
               "duration": "2h", "reason": "release 4.2", "by": "alice"}),
    )
    .await;
    assert_eq!(status, 200, "{pause}");
    let id = pause["id"].as_str().unwrap().to_owned();
    assert_eq!(pause["reason"], "release 4.2");
    let started = served.audit("pause_started").await.remove(0);
    assert_eq!(
        (&started["pause_id"], &started["by"], &started["plugin"]),
        (&json!(id), &json!("operator"), &json!("restart-crm-api")),
        "{started}"
    );

    // Covered: skipped, saying which pause and why; no cooldown began.
    let paused = decide(&served, "crm-api:8000").await;
    assert_eq!(
        (&paused["decision"], &paused["reason"]),
        (&json!("skip"), &json!("paused")),
        "{paused}"
    );
    let detail = paused["detail"].as_str().unwrap();
    assert!(detail.contains(&id) && detail.contains("release 4.2"), "{detail}");
    let skip = served.audit("decision_skip").await.remove(0);
    assert_eq!(skip["pause_id"], json!(id), "{skip}");
    assert_eq!(skip["pause_reason"], "release 4.2", "{skip}");
    assert_eq!(skip["paused_until"], pause["until"], "{skip}");
    assert!(served.remediator.active_cooldowns().is_empty());
    assert!(served.audit("action_started").await.is_empty());

    // Not covered (another instance): acts.
    let other = decide(&served, "crm-api:9000").await;
    assert_eq!(other["decision"], "act", "{other}");

    let (status, listed) = call(url, "GET", "/pauses", Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(listed["pauses"].as_array().unwrap().len(), 1, "{listed}");

    let (status, resumed) = call(url, "DELETE", &format!("/pauses/{id}"), json!({"by": "bob"})).await;
    assert_eq!(status, 200, "{resumed}");
    let ended = served.audit("pause_ended").await.remove(0);
    assert_eq!(
        (
            &ended["pause_id"],
            &ended["why"],
            &ended["by"],
            &ended["by_comment"]
        ),
        (&json!(id), &json!("resumed"), &json!("operator"), &json!("bob")),
        "{ended}"
    );
    let (_, listed) = call(url, "GET", "/pauses", Value::Null).await;
    assert_eq!(listed["pauses"], json!([]), "{listed}");

    // No cooldown was started by the paused decision: it acts at once.
    let after = decide(&served, "crm-api:8000").await;
    assert_eq!(after["decision"], "act", "{after}");

    // Resumed twice, or an unknown id: 404.
    let (status, _) = call(url, "DELETE", &format!("/pauses/{id}"), Value::Null).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_needs_a_reason_a_bounded_duration_and_the_operator_token() {
    let served = served().await;
    let url = &served.url;
    for (body, says) in [
        (json!({"duration": "1h", "reason": " "}), "needs a reason"),
        (json!({"duration": "8d", "reason": "r"}), "at most 7 days"),
        (json!({"duration": "soon", "reason": "r"}), "duration"),
        (
            json!({"duration": "1h", "reason": "r", "matchers": "service=\"crm\", instance=~\"a.*\""}),
            "regular expression",
        ),
    ] {
        let (status, reply) = call(url, "POST", "/pauses", body).await;
        assert_eq!(status, 400, "{reply}");
        assert!(reply["error"].as_str().unwrap().contains(says), "{reply}");
    }
    let (status, _) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            crate::real::http_with(&url, "POST", "/pauses", &[], r#"{"duration":"1h","reason":"r"}"#).unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(status, 401, "pausing takes the operator token");
    assert!(served.audit("pause_started").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_expires_by_itself() {
    let served = served().await;
    let (status, pause) = call(
        &served.url,
        "POST",
        "/pauses",
        json!({"duration": "2s", "reason": "short"}),
    )
    .await;
    assert_eq!(status, 200, "{pause}");
    assert_eq!(decide(&served, "crm-api:8000").await["reason"], "paused");
    let ended = served
        .wait_for("pause_ended", 1, Duration::from_secs(10))
        .await
        .remove(0);
    assert_eq!(
        (&ended["pause_id"], &ended["why"]),
        (&pause["id"], &json!("expired"))
    );
    assert!(ended.get("by").is_none(), "{ended}");
    // Ended within a second or so of its end.
    let late = ended["ts"].as_f64().unwrap() - pause["until"].as_f64().unwrap();
    assert!((0.0..2.5).contains(&late), "ended {late} s after its until");
    assert_eq!(decide(&served, "crm-api:8000").await["decision"], "act");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_pause_outlives_a_restart_and_a_resumed_one_does_not() {
    let served = served().await;
    let pause = |reason: &str| json!({"duration": "1h", "reason": reason, "matchers": "service=\"crm\""});
    let (_, kept) = call(&served.url, "POST", "/pauses", pause("kept")).await;
    let (_, gone) = call(&served.url, "POST", "/pauses", pause("gone")).await;
    let gone_id = gone["id"].as_str().unwrap();
    let (status, _) = call(&served.url, "DELETE", &format!("/pauses/{gone_id}"), Value::Null).await;
    assert_eq!(status, 200);

    let served = served.restart().await;
    let (_, listed) = call(&served.url, "GET", "/pauses", Value::Null).await;
    let listed = listed["pauses"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["id"], kept["id"]);
    assert_eq!(listed[0]["until"], kept["until"]);
    let skipped = decide(&served, "crm-api:8000").await;
    assert_eq!(skipped["reason"], "paused", "{skipped}");
    assert!(skipped["detail"].as_str().unwrap().contains("kept"), "{skipped}");
}
