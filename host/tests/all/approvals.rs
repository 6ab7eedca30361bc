//! Approvals in-process: a preview, then an operator's answer through the
//! HTTP surface (and its errors), expiry, cancellation by a resolved alert,
//! an approval that survives a restart of the host, and approvals refused
//! because the plugin is no longer the version previewed or the answer came
//! after the approval expired.

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
    h.remediator.drain().await;
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
        (
            granted["approval"].as_str(),
            granted["by"].as_str(),
            granted["by_kind"].as_str(),
            granted["by_comment"].as_str()
        ),
        (
            Some(id.as_str()),
            Some("operator"),
            Some("shared_token"),
            Some("alice")
        ),
        "who answered is the verified token; the typed `by` is a comment"
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
    let metrics = h.host.metrics.render(1, &[], &[]);
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

/// The approval plugin as [`approval_plugin`], but restarting `db` (with
/// `db` in its allow-list): another manifest under the same name.
fn approval_plugin_for_db() -> (&'static str, String) {
    (
        "restart.toml",
        manifest(
            "restart-crm-api",
            "restart_container.wasm",
            &["TcpEndpointDownFast"],
            &["crm-api", "db"],
            "[policy]\napproval = \"required\"\napproval_expires = \"15m\"\n\
             [config]\ncontainer = \"db\"\nmin_uptime_sec = 0",
        ),
    )
}

fn firing_on(instance: &str) -> Value {
    let mut alert = opted_in("TcpEndpointDownFast");
    alert["labels"]["instance"] = json!(instance);
    alert
}

/// The id of the approval asked for the alert on `instance`.
fn approval_for(h: &Harness, instance: &str) -> String {
    h.events(&["approval_requested"])
        .iter()
        .find(|r| r["alert"]["labels"]["instance"] == instance)
        .and_then(|r| r["approval"].as_str())
        .unwrap_or_else(|| panic!("no approval for {instance}"))
        .to_owned()
}

fn loaded_hash(h: &Harness) -> String {
    h.remediator
        .plugins()
        .get("restart-crm-api")
        .expect("the plugin is loaded")
        .component
        .hash
        .clone()
}

/// A refused answer: 409 naming `outcome` (and `words`), the approval
/// ended by `kind`, and nothing run.
async fn assert_refused(h: &Harness, id: &str, outcome: &str, words: &str) {
    let (status, reply) = answer(h, id, "approve", Some(OPERATOR_TOKEN), json!({ "by": "alice" })).await;
    assert_eq!(status, 409, "{reply}");
    assert_eq!(reply["outcome"], outcome, "{reply}");
    let error = reply["error"].as_str().unwrap_or_default();
    assert!(error.contains(outcome) && error.contains(words), "{reply}");
    assert!(
        h.fake.restarts().is_empty(),
        "nothing runs: {:?}",
        h.fake.restarts()
    );
    assert!(h.events(&["approval_granted"]).is_empty());
    // Ended: a second answer is told how.
    let (status, again) = answer(h, id, "approve", Some(OPERATOR_TOKEN), json!({})).await;
    assert_eq!(status, 409, "{again}");
    assert!(
        again["error"]
            .as_str()
            .unwrap_or_default()
            .contains("has already ended"),
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_runs_only_the_version_its_preview_ran() {
    let h = harness(&[approval_plugin("15m")], real_no_cooldown).await;
    let previewed = loaded_hash(&h);
    h.process(json!([firing_on("a"), firing_on("b"), firing_on("c")]))
        .await;
    let requests = h.events(&["approval_requested"]);
    assert_eq!(requests.len(), 3, "{requests:#?}");
    for request in &requests {
        assert_eq!(request["component_hash"], previewed.as_str(), "{request}");
        assert_eq!(
            request["manifest_hash"].as_str().map(str::len),
            Some(64),
            "{request}"
        );
    }
    let dir = h.plugins_dir();

    // Another component under the same name and manifest.
    std::fs::copy(guest("misbehave"), dir.join("restart_container.wasm")).unwrap();
    let reloaded = autoheal::reload::reload(&h.host).await.unwrap();
    assert_eq!(reloaded.replaced, vec!["restart-crm-api".to_owned()]);
    assert_ne!(loaded_hash(&h), previewed);
    assert_refused(&h, &approval_for(&h, "a"), "approval_stale", "another component").await;

    // The component back, the manifest changed: the preview said "restart
    // crm-api", this version would restart db.
    std::fs::copy(guest("restart_container"), dir.join("restart_container.wasm")).unwrap();
    let (file, text) = approval_plugin_for_db();
    std::fs::write(dir.join(file), text).unwrap();
    autoheal::reload::reload(&h.host).await.unwrap();
    assert_eq!(loaded_hash(&h), previewed, "the same component");
    assert_refused(&h, &approval_for(&h, "b"), "approval_stale", "manifest changed").await;

    // Gone altogether.
    std::fs::remove_file(dir.join(file)).unwrap();
    let reloaded = autoheal::reload::reload(&h.host).await.unwrap();
    assert_eq!(reloaded.unloaded, vec!["restart-crm-api".to_owned()]);
    assert_refused(&h, &approval_for(&h, "c"), "approval_stale", "no longer loaded").await;

    // Each ended audited as cancelled, stale, with who answered.
    let cancelled = h.events(&["approval_cancelled"]);
    assert_eq!(cancelled.len(), 3, "{cancelled:#?}");
    for event in &cancelled {
        assert_eq!(event["reason"], "approval_stale", "{event}");
        assert_eq!(
            (&event["by"], &event["by_comment"]),
            (&json!("operator"), &json!("alice")),
            "{event}"
        );
        assert!(
            event["comment"]
                .as_str()
                .unwrap_or_default()
                .starts_with("approval_stale: "),
            "{event}"
        );
    }
    // Nothing ran: only the three previews started.
    assert_eq!(h.events(&["action_started"]).len(), 3);
    assert!(
        h.events(&["action_ok", "action_fail", "restart_intent"])
            .is_empty()
    );
    assert!(pending(&h).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_still_runs_after_an_unchanged_reload() {
    let h = harness(&[approval_plugin("15m")], real_no_cooldown).await;
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    let id = h.only("approval_requested")["approval"]
        .as_str()
        .unwrap()
        .to_owned();

    // The same files written again, as a deploy tool would.
    let dir = h.plugins_dir();
    std::fs::copy(guest("restart_container"), dir.join("restart_container.wasm")).unwrap();
    let (file, text) = approval_plugin("15m");
    std::fs::write(dir.join(file), text).unwrap();
    let reloaded = autoheal::reload::reload(&h.host).await.unwrap();
    assert!(reloaded.replaced.is_empty(), "{reloaded:?}");
    assert_eq!(reloaded.serving, 1);

    let (status, reply) = answer(&h, &id, "approve", Some(OPERATOR_TOKEN), json!({ "by": "alice" })).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["decision"]["decision"], "act", "{reply}");
    assert_eq!(h.fake.restarts(), vec!["crm-api".to_owned()]);
    h.only("approval_granted");
    assert!(h.events(&["approval_cancelled"]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_recorded_version_is_compared() {
    let h = harness(&[approval_plugin("15m")], real_no_cooldown).await;
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    let id = h.only("approval_requested")["approval"]
        .as_str()
        .unwrap()
        .to_owned();
    // Replaced while the host was down: the new host loads only the new one.
    std::fs::copy(guest("misbehave"), h.plugins_dir().join("restart_container.wasm")).unwrap();
    let h = h.restart(real_no_cooldown).await;
    assert_eq!(pending(&h).await.len(), 1, "the approval outlives the host");
    assert_refused(&h, &id, "approval_stale", "another component").await;
    assert_eq!(h.only("approval_cancelled")["reason"], "approval_stale");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_after_expires_at_is_refused_even_before_the_tick() {
    let h = harness(&[approval_plugin("1s")], real_no_cooldown).await;
    // No tick: only the answer can find the approvals expired.
    h.host.shutdown.cancel();
    h.process(json!([firing_on("a"), firing_on("b")])).await;
    let latest = h
        .events(&["approval_requested"])
        .iter()
        .map(|r| r["expires_at"].as_f64().unwrap())
        .fold(0.0, f64::max);
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    tokio::time::sleep(std::time::Duration::from_secs_f64(
        (latest + 0.05 - now()).max(0.0),
    ))
    .await;
    assert_eq!(pending(&h).await.len(), 2, "still listed: the tick did not run");

    assert_refused(&h, &approval_for(&h, "a"), "approval_expired", "expired").await;
    // A late deny ends it as expired too.
    let (status, reply) = answer(
        &h,
        &approval_for(&h, "b"),
        "deny",
        Some(OPERATOR_TOKEN),
        json!({}),
    )
    .await;
    assert_eq!(status, 409, "{reply}");
    assert_eq!(reply["outcome"], "approval_expired", "{reply}");
    assert!(h.events(&["approval_denied"]).is_empty());

    let expired = h.events(&["approval_expired"]);
    assert_eq!(expired.len(), 2, "{expired:#?}");
    assert_eq!(expired[0]["by_comment"], "alice", "{expired:#?}");
    assert_eq!(expired[0]["by"], "operator", "{expired:#?}");
    assert!(
        expired[0]["comment"]
            .as_str()
            .unwrap_or_default()
            .contains("after it expired"),
        "{expired:#?}"
    );
    assert!(pending(&h).await.is_empty());
}
