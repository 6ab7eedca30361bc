//! The kill switch and dry-run flipped at runtime: who may, what it does to
//! the next action, what it leaves in the audit trail, and that it survives
//! a restart of the host.

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};

use crate::support::*;

async fn call(h: &Harness, uri: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = Request::post(uri).header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    h.send(request.body(Body::from(body.to_string())).unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_flip_at_runtime_are_audited_and_survive_a_restart() {
    // Configured safe: disabled, dry-run.
    let h = harness(&[crm_plugin()], |c| c.default_cooldown_sec = 0).await;
    let on = json!({ "enabled": true, "by": "alice" });
    let (status, _) = call(&h, "/admin/enabled", None, on.clone()).await;
    assert_eq!(status, 401, "the operator token is needed");
    let (status, _) = call(&h, "/admin/enabled", Some(WEBHOOK_TOKEN), on.clone()).await;
    assert_eq!(status, 401, "a webhook token is not an operator token");
    let (status, reply) = call(
        &h,
        "/admin/enabled",
        Some(OPERATOR_TOKEN),
        json!({ "enabled": "yes" }),
    )
    .await;
    assert_eq!(status, 400, "{reply}");

    let (status, reply) = call(&h, "/admin/enabled", Some(OPERATOR_TOKEN), on).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["mode"], "dry_run");
    assert_eq!(reply["dry_run_reason"], "dry_run");
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert!(h.fake.restarts().is_empty(), "still dry-run");

    let (status, reply) = call(
        &h,
        "/admin/dry-run",
        Some(OPERATOR_TOKEN),
        json!({ "dry_run": false, "by": "alice" }),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["mode"], "real");
    let page = h.status_page().await;
    assert_eq!(
        (
            page["enabled"].clone(),
            page["dry_run"].clone(),
            page["mode"].clone()
        ),
        (json!(true), json!(false), json!("real"))
    );
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(h.fake.restarts(), ["crm-api"], "the next action is real");

    let changes = h.events(&["mode_changed"]);
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["by"], "alice");
    assert_eq!(
        (
            changes[0]["previous_enabled"].clone(),
            changes[0]["enabled"].clone()
        ),
        (json!(false), json!(true))
    );
    assert_eq!(
        (
            changes[1]["previous_dry_run"].clone(),
            changes[1]["dry_run"].clone()
        ),
        (json!(true), json!(false))
    );
    assert_eq!(changes[1]["mode"], "real");

    // A restart keeps what the operator set, not what the config says.
    let h = h.restart(|c| c.default_cooldown_sec = 0).await;
    let page = h.status_page().await;
    assert_eq!(page["mode"], "real", "{page:#}");
    let started = h.events(&["host_started"]);
    assert_eq!(started.last().unwrap()["enabled"], true);
    let (status, reply) = call(
        &h,
        "/admin/enabled",
        Some(OPERATOR_TOKEN),
        json!({ "enabled": false }),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["dry_run_reason"], "disabled");
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(
        h.fake.restarts().len(),
        1,
        "the kill switch holds the next one back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_mode_is_refused_at_runtime_while_the_webhook_is_open() {
    let h = harness(&[crm_plugin()], |c| c.auth.webhook_tokens.clear()).await;
    let (status, _) = call(
        &h,
        "/admin/enabled",
        Some(OPERATOR_TOKEN),
        json!({ "enabled": true }),
    )
    .await;
    assert_eq!(status, 200, "enabled but still dry-run is safe");
    let (status, reply) = call(
        &h,
        "/admin/dry-run",
        Some(OPERATOR_TOKEN),
        json!({ "dry_run": false }),
    )
    .await;
    assert_eq!(status, 409, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("AUTOHEAL_WEBHOOK_TOKEN"),
        "{reply}"
    );
    assert_eq!(h.status_page().await["mode"], "dry_run");
}
