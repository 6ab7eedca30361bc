//! Repeat caps (`[limits] max_actions`): through the real server, a plugin
//! that may act twice an hour on one key acts twice, skips the third as
//! `repeat_cap` naming the window, tells a person once through a real
//! Alertmanager, and still skips after a restart on the same trail. A
//! plugin that declined did not act: its start is not counted.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use autoheal::config::RawConfig;

use crate::notify::Receiver;
use crate::real::*;
use crate::support::*;

const WAIT: Duration = Duration::from_secs(60);

/// The bundled restart plugin with no cooldown (each alert of the one key
/// would act) and a cap of two actions an hour per key.
pub(crate) fn twice_an_hour() -> (&'static str, String) {
    crm_plugin_with("[limits]\ncooldown = \"0s\"\ntarget_cooldown = \"0s\"\nmax_actions = [\"2/1h\"]")
}

/// Real mode, and a breaker that lets every restart through: only the cap stops them.
fn real_and_unbroken(config: &mut RawConfig) {
    real(config);
    config.circuit_breaker.max_restarts = 100;
}

/// The one decision of the answer to a webhook of one alert.
fn decision(reply: &Value) -> &Value {
    &reply["decisions"][0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_third_action_within_the_hour_is_skipped_naming_the_cap_a_person_is_told_once_and_a_restart_remembers()
 {
    let receiver = Receiver::start().await;
    let port = free_port();
    let am = Alertmanager::start_with_notify(&format!("http://127.0.0.1:{port}/alert"), &receiver.url);
    let fake = Arc::new(autoheal_containers::FakeRuntime::new());
    fake.add_running("crm-api", Duration::from_secs(3600));
    let host = ServedHost::start_on(port, &[twice_an_hour()], fake.clone(), |c| {
        real_and_unbroken(c);
        c.alertmanager_url = am.url.clone().into();
        c.notify.enabled = true;
    })
    .await;

    for n in 1..=2 {
        let reply = host.post_alerts(json!([opted_in("TcpEndpointDownFast")])).await;
        assert_eq!(decision(&reply)["decision"], "act", "{reply:#}");
        host.wait_for("action_ok", n, WAIT).await;
    }
    assert_eq!(fake.restarts().len(), 2);

    let reply = host.post_alerts(json!([opted_in("TcpEndpointDownFast")])).await;
    let third = decision(&reply);
    assert_eq!(third["reason"], "repeat_cap", "{reply:#}");
    assert_eq!(
        third["detail"], "2 actions in the last 1h (limits.max_actions \"2/1h\")",
        "{reply:#}"
    );
    let skip = host.wait_for("decision_skip", 1, WAIT).await.remove(0);
    assert_eq!(skip["reason"], "repeat_cap", "{skip:#}");
    assert_eq!(skip["repeat_cap"], "2/1h", "{skip:#}");
    assert_eq!(skip["repeat_cap_key"], "max_actions", "{skip:#}");
    assert_eq!(
        skip["cooldown_key"], "restart-crm-api|TcpEndpointDownFast",
        "{skip:#}"
    );
    let first_start = host.audit("action_started").await[0]["ts"].as_f64().unwrap();
    let until = skip["repeat_cap_until"].as_f64().unwrap();
    assert!((until - (first_start + 3600.0)).abs() < 1.0, "{skip:#}");
    // No cooldown was started for it: nothing is cooling down but the actions'.
    assert_eq!(fake.restarts().len(), 2, "the cap stopped the third restart");

    let notice = receiver.wait_for("AutohealRepeatCapReached", "firing").await;
    assert_eq!(notice["labels"]["plugin"], "restart-crm-api", "{notice:#}");
    assert_eq!(notice["labels"]["cap"], "2/1h", "{notice:#}");
    assert_eq!(
        notice["labels"]["cooldown_key"], "restart-crm-api|TcpEndpointDownFast",
        "{notice:#}"
    );
    assert_eq!(
        notice["labels"]["autoheal_alertname"], "TcpEndpointDownFast",
        "{notice:#}"
    );
    let summary = notice["annotations"]["summary"].as_str().unwrap();
    assert!(summary.contains("\"2/1h\""), "{summary}");

    // A fourth alert is skipped too, and does not post the notice again.
    let posted = |host: &ServedHost| {
        let metrics = host.host.metrics.render(1, &[], &[]);
        sample(&metrics, "autoheal_notifications_total{outcome=\"ok\"}")
    };
    let before = posted(&host);
    let reply = host.post_alerts(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(decision(&reply)["reason"], "repeat_cap", "{reply:#}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        posted(&host),
        before,
        "a skip after the first posted the notice again"
    );
    // Alertmanager repeats what it has (its repeat_interval), but it only ever had one.
    let starts: std::collections::BTreeSet<String> = receiver
        .received("AutohealRepeatCapReached")
        .iter()
        .map(|a| a["startsAt"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(starts.len(), 1, "{starts:?}");
    let metrics = host.host.metrics.render(1, &[], &[]);
    assert_eq!(
        sample(
            &metrics,
            "autoheal_repeat_cap_skips_total{plugin=\"restart-crm-api\"}"
        ),
        2.0
    );

    // The two actions are in the trail: a restarted host still counts them.
    let host = host.restart().await;
    let reply = host.post_alerts(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(decision(&reply)["reason"], "repeat_cap", "{reply:#}");
    assert_eq!(fake.restarts().len(), 2);
}

#[test]
fn the_bundled_restart_plugin_ships_three_an_hour_and_seven_a_day() {
    let manifest = autoheal_sandbox::manifest::Manifest::parse(
        "restart-crm-api.toml",
        &bundled_manifest(),
        autoheal_sandbox::manifest::ManifestBounds { max_memory_mb: 64 },
    )
    .unwrap();
    let caps: Vec<&str> = manifest.max_actions.iter().map(|c| c.as_str()).collect();
    assert_eq!(caps, ["3/1h", "7/1d"]);
    assert!(
        !crate::e2e::crm_manifest("x", "0s").contains("max_actions"),
        "the tests' copy takes the cap out"
    );
}

#[tokio::test]
async fn a_start_the_plugin_declined_is_not_counted_and_dry_run_is_never_capped() {
    // Up 5 s, under the plugin's default 60 s guard: it declines.
    let declining = crm_plugin_with("[limits]\ncooldown = \"0s\"\nmax_actions = [\"1/1h\"]");
    let declining = (
        declining.0,
        declining.1.replace("min_uptime_sec = 0", "min_uptime_sec = 60"),
    );
    let h = harness(&[declining], real_and_unbroken).await;
    h.fake.add_running("crm-api", Duration::from_secs(5));
    for _ in 0..3 {
        let decisions = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
        assert_eq!(decisions[0]["decision"], "act", "{decisions:#?}");
    }
    assert_eq!(h.events(&["action_skipped"]).len(), 3);

    // Dry-run touches nothing: neither counted nor capped.
    let h = h
        .restart(|c| {
            real_and_unbroken(c);
            c.dry_run = true;
        })
        .await;
    h.fake.add_running("crm-api", Duration::from_secs(3600));
    for _ in 0..3 {
        let decisions = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
        assert_eq!(decisions[0]["decision"], "act", "{decisions:#?}");
    }
    assert!(h.fake.restarts().is_empty());

    // Back in real mode, nothing before counted: one real action, then the cap.
    let h = h.restart(real_and_unbroken).await;
    let decisions = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(decisions[0]["decision"], "act", "{decisions:#?}");
    assert_eq!(h.fake.restarts().len(), 1);
    let decisions = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(decisions[0]["reason"], "repeat_cap", "{decisions:#?}");
}

/// An approved action counts like any real one, and once the cap is
/// reached no operator is asked for an action it would refuse: the next
/// alert is skipped as `repeat_cap`, not previewed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_action_counts_and_no_approval_is_asked_past_the_cap() {
    let plugin = crm_plugin_with(
        "[limits]\ncooldown = \"0s\"\nmax_actions = [\"1/1h\"]\n[policy]\napproval = \"required\"",
    );
    let h = harness(&[plugin], real_and_unbroken).await;
    let decisions = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(decisions[0]["decision"], "approval", "{decisions:#?}");
    let id = h.only("approval_requested")["approval"]
        .as_str()
        .unwrap()
        .to_owned();
    let operator = autoheal::auth::Principal::shared(autoheal::auth::Scope::Operator, false);
    let answered = h
        .remediator
        .decide_approval(&id, true, &operator, Some("alice".into()), None)
        .await
        .unwrap();
    let autoheal::remediation::ApprovalDecided::Granted(answered) = answered else {
        panic!("one approval was required: {answered:?}");
    };
    assert_eq!(answered.decision, autoheal::remediation::Decision::Act);
    h.remediator.drain().await;
    assert_eq!(h.fake.restarts().len(), 1);

    let decisions = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(decisions[0]["reason"], "repeat_cap", "{decisions:#?}");
    assert_eq!(
        h.events(&["approval_requested"]).len(),
        1,
        "no second approval was asked for"
    );
}
