//! A plugin that decides not to act (issue 29, "Honest outcomes"): it is
//! recorded `action_skipped`, counted `result="skipped"`, leaves no full
//! cooldown (the alert, re-sent, is tried again), spends no budget, is never
//! credited with a recovery, and is read back so at start; a plugin built
//! against `autoheal:plugin@0.1.0` still runs, its "skipped…" answers
//! recognised. The last test is the whole chain: Alertmanager, a real
//! healthy container in Podman, and the bundled restart-unhealthy.

use std::time::Duration;

use serde_json::{Value, json};

use crate::real::*;
use crate::support::*;

/// restart-container on crm-api with its default uptime guard (60 s), a
/// 2 h cooldown, a `[verify]` watch, and `limits` added.
fn guarded(limits: &str) -> (&'static str, String) {
    (
        "restart.toml",
        manifest(
            "restart-crm-api",
            "restart_container.wasm",
            &["TcpEndpointDownFast"],
            &["crm-api"],
            &format!(
                "[limits]\ncooldown = \"2h\"\n{limits}\n[verify]\nwithin = \"1m\"\n[config]\ncontainer = \"crm-api\""
            ),
        ),
    )
}

fn resolved(alertname: &str) -> Value {
    let mut alert = opted_in(alertname);
    alert["status"] = json!("resolved");
    alert
}

fn decision(decisions: &[Value]) -> (String, String) {
    let d = &decisions[0];
    (
        d["decision"].as_str().unwrap_or("-").to_owned(),
        d["reason"].as_str().unwrap_or("-").to_owned(),
    )
}

#[tokio::test]
async fn a_plugin_that_declines_is_skipped_not_ok_tried_again_and_never_verified() {
    let h = harness(&[guarded("")], real).await;
    // Started 5 s ago: under the plugin's 60 s guard, so it declines.
    h.fake.add_running("crm-api", Duration::from_secs(5));

    let first = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(decision(&first), ("act".into(), "-".into()));
    let skipped = h.only("action_skipped");
    let output = skipped["output"].as_str().unwrap();
    assert!(output.starts_with("crm-api started"), "{skipped:#}");
    assert_eq!(skipped["dry_run"], false);
    assert_eq!(
        skipped["cooldown_key"], "restart-crm-api|TcpEndpointDownFast",
        "{skipped:#}"
    );
    // No cooldown after a skip by default: it ends when the skip is recorded.
    let (ts, until) = (
        skipped["ts"].as_f64().unwrap(),
        skipped["cooldown_until"].as_f64().unwrap(),
    );
    assert!(until <= ts, "{skipped:#}");
    assert!(h.events(&["action_ok", "action_fail"]).is_empty());
    assert!(h.fake.restarts().is_empty());

    let metrics = h.host.metrics.render(1, &[], &[]);
    for line in [
        "autoheal_actions_total{alertname=\"TcpEndpointDownFast\",mode=\"real\",result=\"skipped\"} 1",
        "autoheal_actions_total{alertname=\"TcpEndpointDownFast\",mode=\"real\",result=\"ok\"} 0",
        "autoheal_actions_total{alertname=\"TcpEndpointDownFast\",mode=\"real\",result=\"fail\"} 0",
        "autoheal_plugin_invocations_total{mode=\"real\",plugin=\"restart-crm-api\",result=\"skipped\"} 1",
        // Nothing was changed: no last action.
        "autoheal_last_action_epoch 0",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }

    // Alertmanager re-sends the still-firing alert: tried again, not `cooldown`.
    let again = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(decision(&again), ("act".into(), "-".into()));
    assert_eq!(h.events(&["action_skipped"]).len(), 2);

    // Someone fixes it by hand and the alert resolves: not the skip's doing.
    h.process(json!([resolved("TcpEndpointDownFast")])).await;
    assert!(
        h.events(&["remediation_verified", "remediation_ineffective"])
            .is_empty(),
        "{:#?}",
        h.events(&[])
    );

    // The same watch does credit a restart (so the check above can fail).
    h.fake.add_running("crm-api", Duration::from_secs(3600));
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(h.only("action_ok")["output"], "restarted crm-api");
    h.process(json!([resolved("TcpEndpointDownFast")])).await;
    assert_eq!(h.only("remediation_verified")["plugin"], "restart-crm-api");
}

#[tokio::test]
async fn cooldown_after_skip_is_the_manifests_and_survives_a_restart_as_cut() {
    let h = harness(&[guarded("cooldown_after_skip = \"1h\"")], real).await;
    h.fake.add_running("crm-api", Duration::from_secs(5));
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    let skipped = h.only("action_skipped");
    let left = skipped["cooldown_until"].as_f64().unwrap() - skipped["ts"].as_f64().unwrap();
    assert!((3590.0..=3600.0).contains(&left), "{skipped:#}");

    let again = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(decision(&again), ("skip".into(), "cooldown".into()));
    let remaining = again[0]["remaining_sec"].as_u64().unwrap();
    assert!(remaining <= 3600, "the 2 h cooldown was not cut: {again:#?}");

    // At start the trail's newest word on the key is the skip's, not the
    // 2 h its action_started began.
    let h = h.restart(real).await;
    let after = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(decision(&after), ("skip".into(), "cooldown".into()));
    assert!(after[0]["remaining_sec"].as_u64().unwrap() <= 3600, "{after:#?}");
}

#[tokio::test]
async fn a_skip_leaves_no_cooldown_and_spends_no_budget_even_across_a_restart() {
    let h = harness(&[guarded("")], |c| {
        real(c);
        c.budget.max_actions = 1;
        c.budget.window = "1h".into();
    })
    .await;
    h.fake.add_running("crm-api", Duration::from_secs(5));
    for _ in 0..3 {
        let decisions = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
        assert_eq!(decision(&decisions), ("act".into(), "-".into()));
    }
    assert_eq!(h.events(&["action_skipped"]).len(), 3);
    let page = h.status_page().await;
    assert_eq!(page["budget"]["started_in_window"], 0, "{page:#}");

    let h = h
        .restart(|c| {
            real(c);
            c.budget.max_actions = 1;
            c.budget.window = "1h".into();
        })
        .await;
    let page = h.status_page().await;
    assert_eq!(page["budget"]["started_in_window"], 0, "{page:#}");
    // The one real action of the window is still there to spend.
    h.fake.add_running("crm-api", Duration::from_secs(3600));
    let decisions = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(decision(&decisions), ("act".into(), "-".into()));
    assert_eq!(h.fake.restarts(), ["crm-api"]);
}

/// A component built against `autoheal:plugin@0.1.0` (tests/fixtures/plugin-v0-1).
fn legacy(name: &str, alertname: &str, config: &str) -> (String, String) {
    (
        format!("{name}.toml"),
        manifest(
            name,
            "plugin_v0_1.wasm",
            &[alertname],
            &["crm-api", "db"],
            &format!("[limits]\ncooldown = \"1h\"\n[config]\n{config}"),
        ),
    )
}

#[tokio::test]
async fn a_plugin_built_against_0_1_0_still_runs_and_its_skipped_answers_are_skips() {
    let plugins = [
        legacy("legacy-skips", "LegacySkips", ""),
        legacy("legacy-acts", "LegacyActs", "restart = \"crm-api\""),
        // "skipped", after a restart: it did act.
        legacy(
            "legacy-says-skipped",
            "LegacySaysSkipped",
            "restart = \"db\"\nanswer = \"skipped: though db was restarted\"",
        ),
    ];
    let plugins: Vec<(&str, String)> = plugins.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    let h = harness(&plugins, real).await;
    let loaded = h.events(&["plugin_loaded"]);
    assert_eq!(loaded.len(), 3, "{loaded:#?}");
    for plugin in &loaded {
        assert_eq!(plugin["wit"], "0.1.0", "{plugin:#}");
    }

    h.process(json!([
        opted_in("LegacySkips"),
        opted_in("LegacyActs"),
        opted_in("LegacySaysSkipped")
    ]))
    .await;
    let skipped = h.only("action_skipped");
    assert_eq!(
        (skipped["plugin"].as_str(), skipped["output"].as_str()),
        (Some("legacy-skips"), Some("Skipped: nothing to do here"))
    );
    let oks = h.events(&["action_ok"]);
    let by_plugin = |name: &str| oks.iter().find(|e| e["plugin"] == name).cloned().unwrap();
    assert_eq!(by_plugin("legacy-acts")["output"], "restarted crm-api");
    let lied = by_plugin("legacy-says-skipped");
    assert_eq!(lied["targets"], json!(["db"]), "{lied:#}");
    let mut restarts = h.fake.restarts();
    restarts.sort();
    assert_eq!(restarts, ["crm-api", "db"]);

    // The skip left no cooldown; the two that acted keep their hour.
    let decisions = h
        .process(json!([
            opted_in("LegacySkips"),
            opted_in("LegacyActs"),
            opted_in("LegacySaysSkipped")
        ]))
        .await;
    let got: Vec<(String, String)> = decisions
        .iter()
        .map(|d| decision(std::slice::from_ref(d)))
        .collect();
    assert_eq!(
        got,
        [
            ("act".to_owned(), "-".to_owned()),
            ("skip".to_owned(), "cooldown".to_owned()),
            ("skip".to_owned(), "cooldown".to_owned())
        ]
    );
}

#[tokio::test]
async fn the_audit_cli_shows_a_skip_as_skipped() {
    let h = harness(&[guarded("")], real).await;
    h.fake.add_running("crm-api", Duration::from_secs(5));
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    let path = h.audit_path().display().to_string();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_autoheal"))
        .env_clear()
        .env("NO_COLOR", "1")
        .args(["audit", "--file", &path, "--kind", "action_skipped"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let line = text.lines().next().unwrap_or_default();
    assert!(line.contains("action_skipped"), "{text}");
    assert!(line.contains("skipped: crm-api started"), "{text}");
    assert!(!line.trim_end().ends_with(" ok"), "{text}");
}

/// The bundled restart-unhealthy manifest, for `TcpEndpointDownFast`, on
/// `container`, with a `[verify]` watch.
fn unhealthy_manifest(container: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/restart-unhealthy/restart-unhealthy-crm-api.toml");
    std::fs::read_to_string(path)
        .unwrap()
        .replace("\"crm-api\"", &format!("{container:?}"))
        .replace(
            "alertnames = [\"ContainerUnhealthy\"]",
            "alertnames = [\"TcpEndpointDownFast\"]",
        )
        .replace("stop_timeout_sec = 10", "stop_timeout_sec = 1")
        + "\n[verify]\nwithin = \"1m\"\n"
}

/// The whole chain: Alertmanager delivers, restart-unhealthy finds the
/// real container healthy and declines; Alertmanager's repeat is tried
/// again (not `cooldown`); the alert resolving is not credited to the skip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_unhealthy_on_a_healthy_container_declines_through_the_real_chain() {
    const WAIT: Duration = Duration::from_secs(90);
    let podman = Podman::start();
    let container = unique("crm-api");
    podman.run_httpd_with_health(&container, free_port(), true);
    let before = podman.started_at(&container);
    let port = free_port();
    let am = Alertmanager::start(&format!("http://127.0.0.1:{port}/alert"));
    let manifest = unhealthy_manifest(&container);
    let host = ServedHost::start_staged(
        port,
        &["restart_unhealthy"],
        &[("unhealthy.toml", manifest)],
        podman.runtime(),
        real,
    )
    .await;
    let labels = json!({ "alertname": "TcpEndpointDownFast", "service": container });
    am.push(labels.clone(), json!({ "autoheal": "true" }), None);

    // Alertmanager repeats the alert: each delivery is tried, none cools down.
    let skips = host.wait_for("action_skipped", 2, WAIT).await;
    for skip in &skips {
        assert_eq!(skip["output"], format!("{container} is healthy"), "{skip:#}");
        assert_eq!(skip["plugin"], "restart-unhealthy-crm-api");
    }
    let cooling: Vec<Value> = host
        .audit("decision_skip")
        .await
        .into_iter()
        .filter(|e| e["reason"] == "cooldown")
        .collect();
    assert!(cooling.is_empty(), "{cooling:#?}");
    assert!(host.audit("action_ok").await.is_empty());
    assert_eq!(
        podman.started_at(&container),
        before,
        "a healthy container was restarted"
    );
    let metrics = host.host.metrics.render(1, &[], &[]);
    assert!(
        sample(
            &metrics,
            "autoheal_actions_total{alertname=\"TcpEndpointDownFast\",mode=\"real\",result=\"skipped\"}"
        ) >= 1.0
    );
    assert!(
        metrics.contains(
            "autoheal_actions_total{alertname=\"TcpEndpointDownFast\",mode=\"real\",result=\"ok\"} 0"
        ),
        "{metrics}"
    );

    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    am.push(labels, json!({ "autoheal": "true" }), Some(&now));
    let deadline = std::time::Instant::now() + WAIT;
    while !host
        .audit("decision_skip")
        .await
        .iter()
        .any(|e| e["reason"] == "resolved")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the resolved alert never reached autoheal"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    host.remediator.drain().await;
    assert!(host.audit("remediation_verified").await.is_empty());
    assert!(host.audit("remediation_ineffective").await.is_empty());
}

/// In dry-run a skip is still a skip (`dry_run: true`); and the preview of
/// an action that needs approval, when the plugin declines, asks nobody:
/// there is nothing to approve.
#[tokio::test]
async fn a_dry_run_skip_is_a_skip_and_a_declined_preview_asks_for_no_approval() {
    let (file, text) = guarded("");
    let text = text.replace("[verify]", "[policy]\napproval = \"required\"\n[verify]");
    let h = harness(&[(file, text)], real).await;
    h.fake.add_running("crm-api", Duration::from_secs(5));
    let decisions = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(decisions[0]["decision"], "approval", "{decisions:#?}");
    let skipped = h.only("action_skipped");
    assert_eq!(skipped["dry_run"], true, "{skipped:#}");
    assert!(h.events(&["approval_requested", "action_dry_run"]).is_empty());
    assert!(h.remediator.pending_approvals().is_empty());
    // Nothing waits and no cooldown holds it: the next webhook previews again.
    let again = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(again[0]["decision"], "approval", "{again:#?}");
    assert_eq!(h.events(&["action_skipped"]).len(), 2);
}

/// The console shows a skip as its own kind: its own colour (neither the
/// ok green nor the failure red), "decided not to act" with the plugin's
/// reason, and "skipped" as the plugin's last result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_a_skip_apart_from_ok_and_fail() {
    let fake = std::sync::Arc::new(autoheal_containers::FakeRuntime::new());
    fake.add_running("crm-api", Duration::from_secs(5));
    let host = ServedHost::start(&[guarded("")], fake.clone(), real).await;
    host.post_alerts(json!([opted_in("TcpEndpointDownFast")])).await;
    host.wait_for("action_skipped", 1, Duration::from_secs(30)).await;
    let url = host.url.clone();
    let seen = tokio::task::spawn_blocking(move || {
        let browser = crate::console::Browser::start();
        browser.goto(&format!("{url}/console"));
        browser.wait_for(
            "the skip in the stream and as the plugin's last result",
            Duration::from_secs(15),
            "const row = document.querySelector('#stream .event[data-kind=\"action_skipped\"]');
             const last = document.querySelector('#plugins .plugin[data-plugin=\"restart-crm-api\"] .badge[data-kind=\"action_skipped\"]');
             return row !== null && last !== null;",
        );
        browser.screenshot(&crate::console::artifact("console-skipped.png"));
        browser.js(
            "const row = document.querySelector('#stream .event[data-kind=\"action_skipped\"]');
             const colour = (kind) => {
               const probe = document.createElement('span');
               probe.dataset.kind = kind;
               document.body.appendChild(probe);
               const c = getComputedStyle(probe).getPropertyValue('--c').trim();
               probe.remove();
               return c;
             };
             return {
               text: row.innerText,
               skipped: colour('action_skipped'),
               ok: colour('action_ok'),
               fail: colour('action_fail'),
               decision_skip: colour('decision_skip'),
               last: document.querySelector('#plugins .plugin[data-plugin=\"restart-crm-api\"] .badge[data-kind=\"action_skipped\"]').textContent,
             };",
        )
    })
    .await
    .unwrap();
    let text = seen["text"].as_str().unwrap();
    assert!(text.contains("decided not to act: crm-api started"), "{seen:#}");
    assert_eq!(seen["last"], "skipped", "{seen:#}");
    let skipped = seen["skipped"].as_str().unwrap();
    assert!(!skipped.is_empty(), "{seen:#}");
    for other in ["ok", "fail", "decision_skip"] {
        assert_ne!(seen[other].as_str(), Some(skipped), "{seen:#}");
    }
}

/// The bundled restart plugin as built by the SDK of its time against
/// `autoheal:plugin@0.2.0`, committed (tests/fixtures/components): a
/// component built before 0.3.0 keeps loading and running unchanged.
#[tokio::test]
async fn a_component_built_against_0_2_0_by_the_sdk_of_its_time_still_loads_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(
        "restart-0-2",
        "restart-container-0.2.0.wasm",
        &["TcpEndpointDownFast"],
        &["crm-api"],
        "[config]\ncontainer = \"crm-api\"\nmin_uptime_sec = \"0\"",
    );
    let plugins = stage_plugins(dir.path(), &[], &[("restart.toml", manifest)]);
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/components/restart-container-0.2.0.wasm");
    std::fs::copy(&fixture, plugins.join("restart-container-0.2.0.wasm")).unwrap();
    let fake = std::sync::Arc::new(autoheal_containers::FakeRuntime::new());
    fake.add_running("crm-api", Duration::from_secs(3600));
    let h = Harness::start(dir, fake, real).await;
    let loaded = h.only("plugin_loaded");
    assert_eq!(loaded["wit"], "0.2.0", "{loaded:#}");
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    let ok = h.only("action_ok");
    assert_eq!(ok["targets"], json!(["crm-api"]), "{ok:#}");
    assert_eq!(h.fake.restarts(), ["crm-api"]);
}
