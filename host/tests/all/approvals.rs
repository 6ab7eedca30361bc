//! Approvals in-process: a preview, then an operator's answer through the
//! HTTP surface (and its errors), expiry, cancellation by a resolved alert,
//! and an approval that survives a restart of the host.

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};

use autoheal::config::RawConfig;

use crate::support::*;

/// Real mode, no cooldown: only the approval holds the action back.
fn real_no_cooldown(config: &mut RawConfig) {
    real(config);
    config.default_cooldown_sec = 0;
}

fn approval_plugin(expires: &str) -> (&'static str, String) {
    crm_plugin_with(&format!(
        "[policy]\napproval = \"required\"\napproval_expires = {expires:?}"
    ))
}

async fn answer(h: &Harness, id: &str, verb: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request =
        Request::post(format!("/approvals/{id}/{verb}")).header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let reply = h.send(request.body(Body::from(body.to_string())).unwrap()).await;
    h.engine.drain().await;
    reply
}

async fn pending(h: &Harness) -> Vec<Value> {
    let request = Request::get("/approvals")
        .header("authorization", format!("Bearer {OPERATOR_TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let (status, body) = h.send(request).await;
    assert_eq!(status, 200, "{body}");
    body["pending"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_required_action_runs_only_once_approved_and_only_once() {
    let h = harness(&[approval_plugin("15m")], real_no_cooldown).await;
    let decisions = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(decisions[0]["decision"], "approval", "{decisions:#?}");
    assert_eq!(decisions[0]["mode"], "dry_run");
    assert!(
        h.fake.restarts().is_empty(),
        "nothing runs before an operator says so"
    );

    // The preview: the dry-run's calls, and the container as it is now.
    let started = h.only("action_started");
    assert_eq!(
        (started["mode"].clone(), started["dry_run_reason"].clone()),
        (json!("dry_run"), json!("approval"))
    );
    h.only("action_dry_run");
    let requested = h.only("approval_requested");
    assert_eq!(requested["cause"], "manifest");
    let preview: Vec<&str> = requested["preview"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        preview
            .iter()
            .any(|l| l.starts_with("restart crm-api — running, up 1h 0m, restart count 0")),
        "{preview:#?}"
    );
    let id = requested["approval"].as_str().unwrap().to_owned();
    let expires_in = requested["expires_at"].as_f64().unwrap() - requested["ts"].as_f64().unwrap();
    assert!((899.0..=901.0).contains(&expires_in), "15 m: {expires_in}");

    let listed = pending(&h).await;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["approval"], id.as_str());
    assert_eq!(listed[0]["preview"], requested["preview"]);
    assert_eq!(h.status_page().await["approvals_pending"], 1);

    // The same alert again waits behind the first approval: no second one.
    let again = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(again[0]["reason"], "awaiting_approval", "{again:#?}");
    assert_eq!(h.events(&["approval_requested"]).len(), 1);

    // Bad answers change nothing.
    let (status, _) = answer(&h, &id, "approve", None, json!({})).await;
    assert_eq!(status, 401, "the operator token is needed");
    let (status, _) = answer(&h, &id, "approve", Some(WEBHOOK_TOKEN), json!({})).await;
    assert_eq!(status, 401, "a webhook token is not an operator token");
    let (status, reply) = answer(&h, "0123456789abcdef", "approve", Some(OPERATOR_TOKEN), json!({})).await;
    assert_eq!(status, 404, "{reply}");
    let (status, reply) = answer(&h, &id, "approve", Some(OPERATOR_TOKEN), json!({ "by": 3 })).await;
    assert_eq!(status, 400, "{reply}");
    assert!(h.fake.restarts().is_empty());

    let (status, reply) = answer(&h, &id, "approve", Some(OPERATOR_TOKEN), json!({ "by": "alice" })).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["outcome"], "granted");
    assert_eq!(reply["decision"]["decision"], "act", "{reply}");
    assert_eq!(reply["decision"]["mode"], "real", "{reply}");
    assert_eq!(h.fake.restarts(), vec!["crm-api".to_owned()]);
    let granted = h.only("approval_granted");
    assert_eq!(
        (granted["approval"].as_str(), granted["by"].as_str()),
        (Some(id.as_str()), Some("alice"))
    );
    h.only("action_ok");

    let (status, reply) = answer(&h, &id, "approve", Some(OPERATOR_TOKEN), json!({})).await;
    assert_eq!(status, 409, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("approval_granted"),
        "{reply}"
    );
    let (status, _) = answer(&h, &id, "deny", Some(OPERATOR_TOKEN), json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(h.fake.restarts().len(), 1, "approving twice acts once");
    assert!(pending(&h).await.is_empty());
    let metrics = h.host.metrics.render(1, &[]);
    for line in [
        "autoheal_approvals_total{outcome=\"requested\"} 1",
        "autoheal_approvals_total{outcome=\"granted\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_expired_and_cancelled_approvals_run_nothing() {
    let h = harness(&[approval_plugin("2s")], real_no_cooldown).await;
    let firing = |instance: &str| {
        let mut alert = opted_in("TcpEndpointDownFast");
        alert["labels"]["instance"] = json!(instance);
        alert
    };
    h.process(json!([firing("a"), firing("b"), firing("c")])).await;
    let requests = h.events(&["approval_requested"]);
    assert_eq!(requests.len(), 3, "{requests:#?}");
    let id_of = |instance: &str| {
        requests
            .iter()
            .find(|r| r["alert"]["labels"]["instance"] == instance)
            .map(|r| r["approval"].as_str().unwrap().to_owned())
            .unwrap()
    };

    let (status, reply) = answer(
        &h,
        &id_of("a"),
        "deny",
        Some(OPERATOR_TOKEN),
        json!({ "by": "bob", "comment": "not during the release" }),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["outcome"], "denied");
    let denied = h.only("approval_denied");
    assert_eq!(denied["comment"], "not during the release");

    let mut resolved = firing("b");
    resolved["status"] = json!("resolved");
    h.process(json!([resolved])).await;
    let cancelled = h.only("approval_cancelled");
    assert_eq!(cancelled["approval"], id_of("b").as_str());

    let expired = h.wait_for("approval_expired", 1, 5).await.remove(0);
    assert_eq!(expired["approval"], id_of("c").as_str());
    assert!(expired.get("by").is_none(), "nobody decided: {expired}");
    let (status, _) = answer(&h, &id_of("c"), "approve", Some(OPERATOR_TOKEN), json!({})).await;
    assert_eq!(status, 409, "an expired approval cannot be approved");

    assert!(h.fake.restarts().is_empty());
    assert!(pending(&h).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_approval_survives_a_restart_and_an_annotation_can_ask_for_one() {
    // No policy in the manifest: the alert asks.
    let h = harness(&[crm_plugin()], real_no_cooldown).await;
    let mut alert = opted_in("TcpEndpointDownFast");
    alert["annotations"]["autoheal_approval"] = json!("required");
    let decisions = h.process(json!([alert])).await;
    assert_eq!(decisions[0]["decision"], "approval", "{decisions:#?}");
    let requested = h.only("approval_requested");
    assert_eq!(requested["cause"], "annotation");
    let id = requested["approval"].as_str().unwrap().to_owned();

    let h = h.restart(real_no_cooldown).await;
    let listed = pending(&h).await;
    assert_eq!(listed.len(), 1, "the approval outlives the host: {listed:#?}");
    assert_eq!(listed[0]["approval"], id.as_str());
    let (status, reply) = answer(&h, &id, "approve", Some(OPERATOR_TOKEN), json!({ "by": "carol" })).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(h.fake.restarts(), vec!["crm-api".to_owned()]);

    // Ended before the restart: still ended after it.
    let h = h.restart(real_no_cooldown).await;
    assert!(pending(&h).await.is_empty());
    let (status, _) = answer(&h, &id, "approve", Some(OPERATOR_TOKEN), json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(h.fake.restarts().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_dry_run_an_approval_plugin_rehearses_at_once_and_approved_actions_obey_the_switches() {
    let h = harness(&[approval_plugin("15m")], |c| {
        real_no_cooldown(c);
        c.dry_run = true;
    })
    .await;
    let decisions = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(
        decisions[0]["decision"], "act",
        "nothing real to approve: {decisions:#?}"
    );
    assert!(h.events(&["approval_requested"]).is_empty());

    // Asked for while real, approved after the kill switch went off: it
    // runs in dry-run, as every action does then.
    let h = h.restart(real_no_cooldown).await;
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    let id = h.only("approval_requested")["approval"]
        .as_str()
        .unwrap()
        .to_owned();
    h.host.switches.set(Some(false), None).unwrap();
    let (status, reply) = answer(&h, &id, "approve", Some(OPERATOR_TOKEN), json!({})).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["decision"]["mode"], "dry_run", "{reply}");
    assert!(h.fake.restarts().is_empty(), "the kill switch still holds");
}
