//! Engine decisions, as tables: every skip reason, dry-run vs real, the
//! kill switch, cooldown expiry, per-alert status in a mixed payload.

use serde_json::{Value, json};

use crate::support::*;

fn restart_plugin(extra: &str) -> (&'static str, String) {
    (
        "restart.toml",
        manifest(
            "restart-crm-api",
            "restart_container.wasm",
            &["TcpEndpointDownFast", "UptimeProbeFailing"],
            &["crm-api"],
            &format!("[config]\ncontainer = \"crm-api\"\n{extra}"),
        ),
    )
}

fn decision_of(d: &Value) -> (String, String) {
    (
        d["decision"].as_str().unwrap().to_owned(),
        d["reason"].as_str().unwrap_or("-").to_owned(),
    )
}

/// The original system's annotation, `docker restart <name>`: it picks a
/// loaded plugin that matches the alert and may restart `<name>`, and is
/// refused (naming what was asked) when none may: never a way around an
/// allow-list.
#[tokio::test]
async fn the_original_docker_restart_annotation_picks_a_plugin_allowed_to_do_it() {
    let other = (
        "billing.toml",
        manifest(
            "restart-billing",
            "restart_container.wasm",
            &["TcpEndpointDownFast"],
            &["billing"],
            "[config]\ncontainer = \"billing\"\n",
        ),
    );
    let h = harness(&[restart_plugin(""), other], |_| {}).await;
    h.fake
        .add_running("billing", std::time::Duration::from_secs(3600));
    let asking = |alertname: &str, action: &str| {
        alert(
            alertname,
            "firing",
            json!({"autoheal": "true", "autoheal_action": action}),
        )
    };
    let decisions = h
        .process(json!([asking("TcpEndpointDownFast", "docker restart billing")]))
        .await;
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decision_of(&decisions[0]), ("act".to_owned(), "-".to_owned()));
    assert_eq!(decisions[0]["plugin"], "restart-billing", "{decisions:?}");

    for (alertname, action) in [
        // No plugin may restart it.
        ("TcpEndpointDownFast", "docker restart payments-db"),
        // restart-crm-api may, but does not handle this alert.
        ("DiskFull", "docker restart crm-api"),
    ] {
        let decisions = h.process(json!([asking(alertname, action)])).await;
        assert_eq!(
            decision_of(&decisions[0]),
            ("skip".to_owned(), "no_plugin".to_owned()),
            "{action}: {decisions:?}"
        );
    }
    let skips = h.events(&["decision_skip"]);
    let detail = skips[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("docker restart payments-db")
            && detail.contains("may restart container \"payments-db\""),
        "{detail}"
    );
    let ran = h.events(&["action_dry_run"]);
    assert_eq!(ran.len(), 1);
    assert_eq!(ran[0]["plugin"], "restart-billing");
    assert_eq!(ran[0]["targets"], json!(["billing"]));
}

#[tokio::test]
async fn every_skip_reason_and_the_act_path() {
    let h = harness(&[restart_plugin("")], |_| {}).await;
    // (alert, expected decision, expected reason)
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            alert("TcpEndpointDownFast", "firing", json!({})),
            "skip",
            "not_annotated",
        ),
        (
            alert("TcpEndpointDownFast", "firing", json!({"autoheal": "false"})),
            "skip",
            "not_annotated",
        ),
        (opted_in("DiskFull"), "skip", "no_plugin"),
        (
            alert(
                "TcpEndpointDownFast",
                "firing",
                json!({"autoheal": "true", "autoheal_action": "docker restart billing"}),
            ),
            "skip",
            "no_plugin",
        ),
        (
            alert("TcpEndpointDownFast", "resolved", json!({"autoheal": "true"})),
            "skip",
            "resolved",
        ),
        (opted_in("TcpEndpointDownFast"), "act", "-"),
        (opted_in("TcpEndpointDownFast"), "skip", "cooldown"),
        // Cooldowns are per alertname: another alert of the same plugin acts.
        (opted_in("UptimeProbeFailing"), "act", "-"),
        // The annotation chooses among the plugins that match the alert, no more.
        (
            alert(
                "DiskFull",
                "firing",
                json!({"autoheal": "TRUE", "autoheal_action": "restart-crm-api"}),
            ),
            "skip",
            "not_matched",
        ),
        // ... and a matching one it names is chosen (its cooldown from above runs).
        (
            alert(
                "UptimeProbeFailing",
                "firing",
                json!({"autoheal": "TRUE", "autoheal_action": "restart-crm-api"}),
            ),
            "skip",
            "cooldown",
        ),
    ];
    for (i, (alert, decision, reason)) in cases.into_iter().enumerate() {
        let decisions = h.process(json!([alert])).await;
        assert_eq!(decisions.len(), 1, "case {i}: {decisions:?}");
        assert_eq!(
            decision_of(&decisions[0]),
            (decision.to_owned(), reason.to_owned()),
            "case {i}: {decisions:?}"
        );
    }

    let skips: Vec<String> = h
        .events(&["decision_skip"])
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        skips,
        [
            "not_annotated",
            "not_annotated",
            "no_plugin",
            "no_plugin",
            "resolved",
            "cooldown",
            "not_matched",
            "cooldown"
        ]
    );
    let cooldown = &h.events(&["decision_skip"])[5];
    assert_eq!(cooldown["alertname"], "TcpEndpointDownFast");
    let left = cooldown["remaining_sec"].as_u64().unwrap();
    assert!(
        (590..=600).contains(&left),
        "default cooldown is 600 s, {left} left"
    );
    // The two acts; an annotation naming a plugin that does not match no longer acts.
    assert_eq!(h.events(&["action_dry_run"]).len(), 2);
}

#[tokio::test]
async fn mixed_payload_is_decided_per_alert_status() {
    let h = harness(&[restart_plugin("")], real).await;
    let decisions = h
        .process(json!([
            alert("TcpEndpointDownFast", "resolved", json!({"autoheal": "true"})),
            opted_in("UptimeProbeFailing"),
        ]))
        .await;
    assert_eq!(decision_of(&decisions[0]), ("skip".into(), "resolved".into()));
    assert_eq!(decision_of(&decisions[1]), ("act".into(), "-".into()));
    assert_eq!(h.fake.restarts(), ["crm-api"]);
    assert_eq!(h.only("action_ok")["alertname"], "UptimeProbeFailing");
}

#[tokio::test]
async fn actions_are_real_only_when_enabled_and_not_dry_run() {
    // (enabled, dry_run, expected event kind, dry-run reason, restarts)
    let cases = [
        (false, true, "action_dry_run", Some("disabled"), 0),
        (false, false, "action_dry_run", Some("disabled"), 0),
        (true, true, "action_dry_run", Some("dry_run"), 0),
        (true, false, "action_ok", None, 1),
    ];
    for (enabled, dry_run, kind, reason, restarts) in cases {
        let h = harness(&[restart_plugin("")], |c| {
            c.enabled = enabled;
            c.dry_run = dry_run;
        })
        .await;
        h.process(json!([opted_in("TcpEndpointDownFast")])).await;
        let label = format!("enabled={enabled} dry_run={dry_run}");
        assert_eq!(h.fake.restarts().len(), restarts, "{label}");
        let started = h.only("action_started");
        assert_eq!(started["dry_run_reason"].as_str(), reason, "{label}");
        let event = h.only(kind);
        assert_eq!(event["plugin"], "restart-crm-api", "{label}");
        assert_eq!(event["target"], "crm-api", "{label}");
        assert_eq!(event["cmd"], "restart crm-api", "{label}");
        let calls = event["calls"].as_array().unwrap();
        let restart = calls
            .iter()
            .find(|c| c["capability"] == "containers.restart")
            .unwrap();
        let expected = if restarts == 1 { "ok" } else { "recorded" };
        assert_eq!(restart["outcome"], expected, "{label}: {calls:?}");
    }
}

#[tokio::test]
async fn cooldown_expires() {
    let h = harness(&[restart_plugin("")], |c| {
        c.cooldowns.insert("TcpEndpointDownFast".into(), 1);
    })
    .await;
    let act = |d: Vec<Value>| decision_of(&d[0]).0;
    assert_eq!(
        act(h.process(json!([opted_in("TcpEndpointDownFast")])).await),
        "act"
    );
    assert_eq!(
        act(h.process(json!([opted_in("TcpEndpointDownFast")])).await),
        "skip"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        act(h.process(json!([opted_in("TcpEndpointDownFast")])).await),
        "act"
    );
    // The per-alertname cooldown applies; other alerts keep the default.
    assert_eq!(h.events(&["action_started"])[0]["cooldown_sec"], 1);
    h.process(json!([opted_in("UptimeProbeFailing")])).await;
    assert_eq!(h.events(&["action_started"])[2]["cooldown_sec"], 600);
}

#[tokio::test]
async fn manifest_cooldown_and_cooldown_labels() {
    let (file, mut text) = restart_plugin("");
    text.push_str("[limits]\ncooldown = \"2h\"\n[cooldown_key]\nlabels = [\"instance\"]\n");
    let h = harness(&[(file, text)], |_| {}).await;
    let mut other = opted_in("TcpEndpointDownFast");
    other["labels"]["instance"] = json!("crm-api-2:8000");
    let decisions = h
        .process(json!([
            opted_in("TcpEndpointDownFast"),
            other,
            opted_in("TcpEndpointDownFast")
        ]))
        .await;
    let got: Vec<_> = decisions.iter().map(decision_of).collect();
    assert_eq!(
        got,
        [
            ("act".into(), "-".into()),
            ("act".into(), "-".into()),
            ("skip".into(), "cooldown".into())
        ]
    );
    let started = h.events(&["action_started"]);
    assert_eq!(started[0]["cooldown_sec"], 7200);
    assert_eq!(
        started[0]["cooldown_key"],
        "restart-crm-api|TcpEndpointDownFast|instance=crm-api:8000"
    );
}

#[tokio::test]
async fn bundled_plugin_skips_a_container_that_just_started() {
    let h = harness(&[("crm.toml", bundled_manifest())], real).await;
    h.fake.add_running("crm-api", std::time::Duration::from_secs(5));
    h.process(json!([opted_in("CrmMetricsScrapeStale")])).await;
    assert!(h.fake.restarts().is_empty());
    // The plugin declined: a skip, not an `action_ok`.
    assert!(h.events(&["action_ok"]).is_empty());
    let skipped = h.only("action_skipped");
    let output = skipped["output"].as_str().unwrap();
    assert!(output.starts_with("crm-api started"), "{output}");
    assert!(skipped.get("target").is_none(), "{skipped}");
}

#[tokio::test]
async fn bundled_plugin_takes_the_container_from_a_label() {
    let text = manifest(
        "restart-by-label",
        "restart_container.wasm",
        &["TcpEndpointDownFast"],
        &["crm-api", "db"],
        "[config]\ncontainer_label = \"service\"\nmin_uptime_sec = 0\n",
    );
    let h = harness(&[("label.toml", text)], real).await;
    let mut alert = opted_in("TcpEndpointDownFast");
    alert["labels"]["service"] = json!("db");
    h.process(json!([alert])).await;
    assert_eq!(h.fake.restarts(), ["db"]);
    assert_eq!(h.only("action_ok")["output"], "restarted db");
}

/// A chaos drill fails real actions on purpose, says so, and touches nothing;
/// dry-run is never drilled.
#[tokio::test]
async fn a_chaos_drill_fails_real_actions_on_purpose() {
    let drill = |c: &mut autoheal::config::RawConfig| {
        real(c);
        c.chaos_failure_rate = 1.0;
    };
    let h = harness(&[restart_plugin("")], drill).await;
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    let failed = h.only("action_fail");
    assert_eq!(failed["reason"], "chaos");
    assert_eq!(failed["chaos"], true);
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("AUTOHEAL_CHAOS_FAILURE_RATE")
    );
    assert!(h.fake.restarts().is_empty(), "a drill touches nothing");

    let h = harness(&[restart_plugin("")], |c| c.chaos_failure_rate = 1.0).await;
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert!(h.only("action_dry_run").get("chaos").is_none());
}

/// Label values holding the cooldown key's separator once made two alerts
/// one key (one cooldown, one claim): through the webhook each now has its
/// own. A cooldown an earlier version began (its `action_started` line, as
/// it wrote it) still holds the same alert back after an upgrade, and the
/// escaped keys restore too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooldown_keys_are_unambiguous_and_an_older_trails_keys_restore() {
    let (file, mut text) = restart_plugin("");
    text.push_str("[limits]\ncooldown = \"2h\"\n[cooldown_key]\nlabels = [\"service\", \"instance\"]\n");
    let fake = std::sync::Arc::new(autoheal_containers::FakeRuntime::new());
    fake.add_running("crm-api", std::time::Duration::from_secs(3600));
    let served = crate::real::ServedHost::start(&[(file, text)], fake, |_| {}).await;
    let with = |service: &str, instance: &str| {
        let mut alert = opted_in("TcpEndpointDownFast");
        alert["labels"]["service"] = json!(service);
        alert["labels"]["instance"] = json!(instance);
        alert
    };
    // Both were `restart-crm-api|TcpEndpointDownFast|service=crm|instance=b|instance=c`.
    let colliding = json!([with("crm|instance=b", "c"), with("crm", "b|instance=c")]);
    let decisions = |reply: Value| -> Vec<(String, String)> {
        reply["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(decision_of)
            .collect()
    };
    let act = ("act".to_owned(), "-".to_owned());
    let cooling = ("skip".to_owned(), "cooldown".to_owned());
    assert_eq!(
        decisions(served.post_alerts(colliding.clone()).await),
        [act.clone(), act.clone()]
    );
    let started = served
        .wait_for("action_started", 2, std::time::Duration::from_secs(10))
        .await;
    assert_eq!(
        started[0]["cooldown_key"],
        "restart-crm-api|TcpEndpointDownFast|service=crm\\|instance=b|instance=c"
    );
    assert_eq!(
        started[1]["cooldown_key"],
        "restart-crm-api|TcpEndpointDownFast|service=crm|instance=b\\|instance=c"
    );
    assert_eq!(
        decisions(served.post_alerts(colliding.clone()).await),
        [cooling.clone(), cooling.clone()]
    );

    // An ordinary alert's cooldown, begun by the previous version: its key
    // is the one this version computes, byte for byte.
    served.remediator.drain().await;
    let now = autoheal_core::util::unix_now();
    let line = json!({
        "id": served.host.audit.next_id(), "ts": now, "kind": "action_started",
        "alertname": "TcpEndpointDownFast",
        "cooldown_key": "restart-crm-api|TcpEndpointDownFast|service=crm-api|instance=crm-api:8000",
        "cooldown_sec": 7200, "cooldown_until": now + 7200.0, "fingerprint": "717fc25c13187b79",
        "mode": "dry_run", "dry_run_reason": "disabled", "plugin": "restart-crm-api",
        "plugin_version": "1.0.0", "status": "firing",
    });
    {
        use std::io::Write;
        let mut trail = std::fs::OpenOptions::new()
            .append(true)
            .open(&served.host.config.audit_path)
            .unwrap();
        writeln!(trail, "{line}").unwrap();
    }
    let served = served.restart().await;
    let mut after = colliding.as_array().unwrap().clone();
    after.push(opted_in("TcpEndpointDownFast"));
    assert_eq!(
        decisions(served.post_alerts(json!(after)).await),
        [cooling.clone(), cooling.clone(), cooling],
        "all three cooldowns were restored from the trail"
    );
    // A third alert that was never acted on is not held back by any of them.
    assert_eq!(
        decisions(served.post_alerts(json!([with("crm", "b")])).await),
        [act]
    );
}

/// Two plugins one alert runs on one container are a double remediation:
/// the host says so at start (log and `host_warning`), once per pair, and
/// not for a plugin that shares neither the alert nor the container.
#[tokio::test]
async fn plugins_that_may_act_together_on_one_container_are_warned_of_at_start() {
    let twin = (
        "twin.toml",
        manifest(
            "restart-crm-api-too",
            "restart_container.wasm",
            &["TcpEndpointDownFast"],
            &["crm-api"],
            "[config]\ncontainer = \"crm-api\"",
        ),
    );
    let apart = (
        "apart.toml",
        manifest(
            "restart-billing",
            "restart_container.wasm",
            &["TcpEndpointDownFast"],
            &["billing"],
            "[config]\ncontainer = \"billing\"",
        ),
    );
    let h = harness(&[crm_plugin(), twin, apart], |_| {}).await;
    let warnings = h.events(&["host_warning"]);
    let overlaps: Vec<&Value> = warnings
        .iter()
        .filter(|w| w["warning"] == "plugins_overlap")
        .collect();
    assert_eq!(overlaps.len(), 1, "{warnings:#?}");
    let detail = overlaps[0]["detail"].as_str().unwrap();
    for named in [
        "restart-crm-api",
        "restart-crm-api-too",
        "TcpEndpointDownFast",
        "crm-api",
    ] {
        assert!(detail.contains(named), "{detail}");
    }
    assert!(!detail.contains("billing"), "{detail}");
}

/// The bundled plugins, as `cargo xtask run` serves them: one alert runs
/// one of them (the Python and JavaScript twins of the Rust example match
/// alerts of their own).
#[test]
fn no_two_bundled_plugins_act_on_one_alerts_container() {
    let plugins = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let mut manifests = Vec::new();
    for dir in std::fs::read_dir(&plugins).unwrap() {
        let dir = dir.unwrap().path();
        for file in std::fs::read_dir(&dir).into_iter().flatten() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "toml") && file.file_name().unwrap() != "Cargo.toml" {
                let text = std::fs::read_to_string(&file).unwrap();
                let bounds = autoheal_sandbox::manifest::ManifestBounds { max_memory_mb: 256 };
                manifests.push(autoheal_sandbox::manifest::Manifest::parse("m.toml", &text, bounds).unwrap());
            }
        }
    }
    assert!(
        manifests.len() >= 5,
        "the bundled manifests were read: {}",
        manifests.len()
    );
    for (i, a) in manifests.iter().enumerate() {
        for b in &manifests[i + 1..] {
            assert_eq!(a.overlap_with(b), None, "{} and {}", a.name, b.name);
        }
    }
}
