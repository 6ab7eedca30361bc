//! Notifications through a real Alertmanager: autoheal's own alerts take the
//! original system's route (`alertname=~"Autoheal.*"`) to a receiver of the
//! team's, here a test webhook server, and resolve when their hold ends.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::real::*;
use crate::support::*;

const WAIT: Duration = Duration::from_secs(60);

/// A webhook receiver that keeps every alert Alertmanager posts to it, with
/// the notification's status.
pub(crate) struct Receiver {
    pub(crate) url: String,
    alerts: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    pub(crate) async fn start() -> Receiver {
        let alerts: Arc<Mutex<Vec<Value>>> = Arc::default();
        let kept = alerts.clone();
        let app = axum::Router::new().route(
            "/notify",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let kept = kept.clone();
                async move {
                    let alerts = body["alerts"].as_array().cloned().unwrap_or_default();
                    kept.lock().unwrap().extend(alerts);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/notify", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, alerts }
    }

    /// Every alert named `alertname` received so far, each time Alertmanager sent it.
    pub(crate) fn received(&self, alertname: &str) -> Vec<Value> {
        self.alerts
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a["labels"]["alertname"] == alertname)
            .cloned()
            .collect()
    }

    /// Waits for an alert named `alertname` with `status`.
    pub(crate) async fn wait_for(&self, alertname: &str, status: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self
                .alerts
                .lock()
                .unwrap()
                .iter()
                .find(|a| a["labels"]["alertname"] == alertname && a["status"] == status)
                .cloned();
            if let Some(alert) = found {
                return alert;
            }
            assert!(
                Instant::now() < deadline,
                "no {status} {alertname} reached the receiver: {:#?}",
                self.alerts.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A real action that fails (the engine has no `crm-api`) raises
/// `AutohealActionFailed`; the next alert, past a budget of one, raises
/// `AutohealBudgetExhausted`. Both reach the team's receiver through
/// Alertmanager, with labels of what they concern and a console link, and
/// both resolve once their hold has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_spent_budgets_reach_the_teams_receiver_through_alertmanager_and_resolve() {
    let receiver = Receiver::start().await;
    // Alertmanager needs autoheal's address first; autoheal needs Alertmanager's.
    let port = free_port();
    let am = Alertmanager::start_with_notify(&format!("http://127.0.0.1:{port}/alert"), &receiver.url);
    let fake = Arc::new(autoheal_containers::FakeRuntime::new());
    let host = ServedHost::start_on(port, &[crm_plugin()], fake, |c| {
        real(c);
        c.default_cooldown_sec = 0;
        c.budget.max_actions = 1;
        c.alertmanager_url = am.url.clone().into();
        c.public_url = "http://autoheal.example:9009".into();
        c.notify.enabled = true;
        c.notify.hold = "3s".into();
    })
    .await;

    host.post_alerts(json!([opted_in("TcpEndpointDownFast")])).await;
    host.wait_for("action_fail", 1, WAIT).await;
    host.post_alerts(json!([opted_in("TcpEndpointDownFast")])).await;
    let skip = host.wait_for("decision_skip", 1, WAIT).await.remove(0);
    assert_eq!(skip["budget"], "max_actions", "{skip}");

    let failed = receiver.wait_for("AutohealActionFailed", "firing").await;
    assert_eq!(failed["labels"]["plugin"], "restart-crm-api", "{failed:#}");
    assert_eq!(
        failed["labels"]["autoheal_alertname"], "TcpEndpointDownFast",
        "{failed:#}"
    );
    assert_eq!(failed["labels"]["mode"], "real", "{failed:#}");
    assert_eq!(
        failed["annotations"]["console"], "http://autoheal.example:9009/console",
        "{failed:#}"
    );
    let spent = receiver.wait_for("AutohealBudgetExhausted", "firing").await;
    assert_eq!(spent["labels"]["budget"], "max_actions", "{spent:#}");
    assert!(
        spent["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("budget.max_actions = 1"),
        "{spent:#}"
    );
    // Nothing raises them again: each ends with its hold.
    receiver.wait_for("AutohealActionFailed", "resolved").await;
    receiver.wait_for("AutohealBudgetExhausted", "resolved").await;
    // They took their own route, never the one back to autoheal (which
    // would have decided on them).
    let decided = host.audit("decision_skip,action_started").await;
    assert!(
        decided.iter().all(|e| e["alertname"] == "TcpEndpointDownFast"),
        "{decided:#?}"
    );
    let metrics = host.host.metrics.render(1, &[], &[]);
    assert!(sample(&metrics, "autoheal_notifications_total{outcome=\"ok\"}") >= 1.0);
}

/// An alert autoheal declines (here: the cooldown after its restart) that
/// goes on firing past `[notify] not_remediating_after` reaches people as
/// `AutohealNotRemediating`, naming the alert and the reason, through a real
/// Alertmanager; it resolves once the alert does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_autoheal_declines_while_it_fires_reaches_people_and_resolves_with_it() {
    let receiver = Receiver::start().await;
    let port = free_port();
    let am = Alertmanager::start_with_notify(&format!("http://127.0.0.1:{port}/alert"), &receiver.url);
    let fake = Arc::new(autoheal_containers::FakeRuntime::new());
    fake.add_running("crm-api", Duration::from_secs(3600));
    let host = ServedHost::start_on(port, &[crm_plugin()], fake, |c| {
        real(c);
        c.alertmanager_url = am.url.clone().into();
        c.notify.enabled = true;
        c.notify.not_remediating_after = "2s".into();
    })
    .await;

    host.post_alerts(json!([opted_in("TcpEndpointDownFast")])).await;
    host.wait_for("action_ok", 1, WAIT).await;
    // Still firing: Alertmanager sends it again, and the cooldown declines it.
    host.post_alerts(json!([opted_in("TcpEndpointDownFast")])).await;
    let skip = host.wait_for("decision_skip", 1, WAIT).await.remove(0);
    assert_eq!(skip["reason"], "cooldown", "{skip}");

    let notice = receiver.wait_for("AutohealNotRemediating", "firing").await;
    assert_eq!(
        notice["labels"]["autoheal_alertname"], "TcpEndpointDownFast",
        "{notice:#}"
    );
    assert_eq!(notice["labels"]["fingerprint"], skip["fingerprint"], "{notice:#}");
    let summary = notice["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("declined to remediate it (cooldown)"),
        "{summary}"
    );

    // The alert resolves: so does the notice.
    host.post_alerts(json!([alert(
        "TcpEndpointDownFast",
        "resolved",
        json!({ "autoheal": "true" })
    )]))
    .await;
    receiver.wait_for("AutohealNotRemediating", "resolved").await;
}

/// Issue 40: a dry-run changed nothing, so a chain of dry-runs that did not
/// help pages nobody. With `dry_run = true` (the operator's choice) the
/// action is watched and judged, recorded `dry_run: true` and counted
/// `mode="dry_run"`, and no `AutohealRemediationIneffective` is posted; the
/// same chain run for real, after the switch, is posted through a real
/// Alertmanager. Both notices would share one Alertmanager group, so the
/// notification that carries the real one would carry a dry-run one too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_that_did_not_help_pages_nobody_and_a_real_one_does() {
    let receiver = Receiver::start().await;
    let port = free_port();
    let am = Alertmanager::start_with_notify(&format!("http://127.0.0.1:{port}/alert"), &receiver.url);
    let fake = Arc::new(autoheal_containers::FakeRuntime::new());
    fake.add_running("crm-api", Duration::from_secs(3600));
    let plugin = (
        "restart.toml",
        manifest(
            "restart-crm-api",
            "restart_container.wasm",
            &["TcpEndpointDownFast", "UptimeProbeFailing"],
            &["crm-api"],
            "[verify]\nwithin = \"1s\"\n[config]\ncontainer = \"crm-api\"\nmin_uptime_sec = 0",
        ),
    );
    let host = ServedHost::start_on(port, &[plugin], fake.clone(), |c| {
        c.enabled = true;
        c.dry_run = true;
        c.default_cooldown_sec = 0;
        c.alertmanager_url = am.url.clone().into();
        c.notify.enabled = true;
        c.notify.hold = "60s".into();
    })
    .await;

    // The operator's dry-run: watched, judged, labelled, not paged.
    host.post_alerts(json!([opted_in("TcpEndpointDownFast")])).await;
    let judged = host.wait_for("remediation_ineffective", 1, WAIT).await;
    assert_eq!(judged[0]["dry_run"], true, "{:#}", judged[0]);
    assert!(judged[0].get("next").is_none(), "the end of the chain");
    let watched = host.audit("remediation_watched").await;
    assert_eq!(watched[0]["dry_run_reason"], "dry_run", "{watched:#?}");
    assert!(fake.restarts().is_empty());
    let metrics = host.host.metrics.render(1, &[], &[]);
    for (series, value) in [
        (
            "autoheal_remediations_total{mode=\"dry_run\",outcome=\"ineffective\",plugin=\"restart-crm-api\"}",
            1.0,
        ),
        (
            "autoheal_remediations_total{mode=\"real\",outcome=\"ineffective\",plugin=\"restart-crm-api\"}",
            0.0,
        ),
    ] {
        assert_eq!(sample(&metrics, series), value, "{series}");
    }

    // Real now: the same chain, on another alert, restarts and pages.
    let url = host.url.clone();
    let (status, reply) = tokio::task::spawn_blocking(move || {
        http(&url, "POST", "/admin/dry-run", r#"{"dry_run": false}"#).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "{reply}");
    host.post_alerts(json!([opted_in("UptimeProbeFailing")])).await;
    let told = receiver
        .wait_for("AutohealRemediationIneffective", "firing")
        .await;
    assert_eq!(fake.restarts().len(), 1);
    assert_eq!(told["labels"]["mode"], "real", "{told:#}");
    let paged: Vec<Value> = receiver.received("AutohealRemediationIneffective");
    assert!(
        paged
            .iter()
            .all(|a| a["labels"]["autoheal_alertname"] == "UptimeProbeFailing"),
        "only the real chain is paged: {paged:#?}"
    );
    let judged = host.audit("remediation_ineffective").await;
    assert_eq!(judged.len(), 2, "{judged:#?}");
    assert_eq!(judged[1]["dry_run"], false);
}
