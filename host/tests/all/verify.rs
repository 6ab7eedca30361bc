//! Verify the fix in-process: an action followed by its alert resolving is
//! verified; one whose alert keeps firing escalates along the chain, and
//! the end of the chain is ineffective with no next step.

use std::time::Duration;

use serde_json::{Value, json};

use autoheal::config::RawConfig;

use crate::support::*;

fn real_no_cooldown(config: &mut RawConfig) {
    real(config);
    config.default_cooldown_sec = 0;
}

/// The bundled restart component under another name, handling no alert by
/// itself: a chain's second step.
fn second_step() -> (&'static str, String) {
    (
        "second.toml",
        manifest(
            "restart-crm-api-harder",
            "restart_container.wasm",
            &["NeverFiresByItself"],
            &["crm-api"],
            "[config]\ncontainer = \"crm-api\"\nmin_uptime_sec = 0",
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_followed_by_a_resolved_alert_is_verified_with_its_time_to_recover() {
    let h = harness(&[crm_plugin_with("[verify]\nwithin = \"1m\"")], real_no_cooldown).await;
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(h.fake.restarts().len(), 1);
    let page = h.status_page().await;
    let watched = page["verifying"].as_array().unwrap();
    assert_eq!(watched.len(), 1, "{page:#}");
    assert_eq!(watched[0]["chain"], json!(["restart-crm-api"]));
    assert_eq!(watched[0]["step"], 1);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut resolved = opted_in("TcpEndpointDownFast");
    resolved["status"] = json!("resolved");
    h.process(json!([resolved])).await;
    let verified = h.only("remediation_verified");
    assert_eq!(verified["plugin"], "restart-crm-api");
    assert_eq!(verified["via"], "webhook");
    assert_eq!(verified["step"], 1);
    assert_eq!(verified["dry_run"], false);
    let ttr = verified["time_to_recover_sec"].as_f64().unwrap();
    assert!((0.3..60.0).contains(&ttr), "{ttr}");
    assert!(h.events(&["remediation_ineffective"]).is_empty());
    assert!(h.status_page().await["verifying"].as_array().unwrap().is_empty());
    let metrics = h.host.metrics.render(1, &[], &[]);
    for line in [
        "autoheal_remediations_total{mode=\"real\",outcome=\"verified\",plugin=\"restart-crm-api\"} 1",
        "autoheal_remediations_total{mode=\"real\",outcome=\"ineffective\",plugin=\"restart-crm-api\"} 0",
        "autoheal_time_to_recover_seconds_count{mode=\"real\",plugin=\"restart-crm-api\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_that_keeps_firing_escalates_to_the_next_plugin_then_ends_the_chain() {
    let first = crm_plugin_with("[verify]\nwithin = \"1s\"\n[escalate]\nthen = [\"restart-crm-api-harder\"]");
    let h = harness(&[first, second_step()], real_no_cooldown).await;
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;

    let steps = h.wait_for("remediation_ineffective", 2, 10).await;
    h.remediator.drain().await;
    assert_eq!(steps[0]["plugin"], "restart-crm-api");
    assert_eq!(steps[0]["step"], 1);
    assert_eq!(steps[0]["next"], "restart-crm-api-harder");
    assert_eq!(steps[1]["plugin"], "restart-crm-api-harder");
    assert_eq!(steps[1]["step"], 2);
    assert!(
        steps[1].get("next").is_none(),
        "the end of the chain: {}",
        steps[1]
    );
    let started: Vec<Value> = h.events(&["action_started"]);
    let plugins: Vec<&str> = started.iter().map(|e| e["plugin"].as_str().unwrap()).collect();
    assert_eq!(plugins, ["restart-crm-api", "restart-crm-api-harder"]);
    assert_eq!(h.fake.restarts().len(), 2, "each step restarted once");
    assert!(h.events(&["remediation_verified"]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_escalates_at_once_and_a_step_that_cannot_start_ends_the_chain() {
    // The first step fails (its container is not in the engine); the next
    // plugin is not loaded.
    let (file, text) = crm_plugin_with("[verify]\nwithin = \"1m\"\n[escalate]\nthen = [\"not-loaded\"]");
    let h = harness(&[(file, text.replace("crm-api", "crm-gone"))], real_no_cooldown).await;
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    let steps = h.wait_for("remediation_ineffective", 2, 5).await;
    assert!(
        steps[0]["detail"].as_str().unwrap().contains("failed"),
        "{}",
        steps[0]
    );
    assert_eq!(steps[0]["next"], "not-loaded");
    assert_eq!(steps[1]["plugin"], "not-loaded");
    assert!(
        steps[1]["detail"].as_str().unwrap().contains("did not start"),
        "{}",
        steps[1]
    );
    assert!(steps[1].get("next").is_none());
    let skip = h.only("decision_skip");
    assert_eq!(skip["reason"], "no_plugin");
}

/// A watch survives a restart of the host: the action's `remediation_watched`
/// is read back at start, `GET /` lists the watch again, and the alert
/// resolving afterwards is verified against the action made before the
/// restart. A watch that ended before the restart is not resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_begun_before_a_restart_is_resumed_and_judged_after_it() {
    let plugin = crm_plugin_with("[verify]\nwithin = \"1m\"");
    let h = harness(&[plugin], real_no_cooldown).await;
    // One alert verified before the restart, one still watched at it.
    let mut other = opted_in("TcpEndpointDownFast");
    other["labels"]["instance"] = json!("crm-api:9000");
    h.process(json!([other.clone()])).await;
    other["status"] = json!("resolved");
    h.process(json!([other])).await;
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    let watched = h.events(&["remediation_watched"]);
    assert_eq!(watched.len(), 2, "{watched:#?}");
    assert_eq!(watched[1]["alert"]["labels"]["alertname"], "TcpEndpointDownFast");

    let h = h.restart(real_no_cooldown).await;
    let page = h.status_page().await;
    let resumed = page["verifying"].as_array().unwrap();
    assert_eq!(resumed.len(), 1, "only the watch still open is resumed: {page:#}");
    assert_eq!(resumed[0]["step"], 1);

    let mut resolved = opted_in("TcpEndpointDownFast");
    resolved["status"] = json!("resolved");
    h.process(json!([resolved])).await;
    let verified = h.events(&["remediation_verified"]);
    assert_eq!(verified.len(), 2, "{verified:#?}");
    assert_eq!(verified[1]["plugin"], "restart-crm-api");
    assert_eq!(verified[1]["via"], "webhook");
    assert!(h.status_page().await["verifying"].as_array().unwrap().is_empty());
}
