//! Maintenance windows (`[[maintenance]]`), through the real host's HTTP
//! surface: an open window skips what it covers as `paused` (no cooldown
//! started), lets the rest act, and shows in `GET /`, `/metrics` and the
//! trail; a window that is not open changes nothing.

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};

use autoheal::config::{RawConfig, RawWindow};
use autoheal_core::util::unix_now;

use crate::support::*;

/// Open now and for the next hour (an occurrence each minute, an hour
/// long), over `service="crm"` alerts only; and one closed until New Year.
pub(crate) fn windows(config: &mut RawConfig) {
    config.maintenance = vec![
        RawWindow {
            name: "db-upgrade".into(),
            schedule: "* * * * *".into(),
            duration: "1h".into(),
            matchers: r#"service="crm""#.into(),
            reason: "DB upgrade 4.2".into(),
            ..RawWindow::default()
        },
        RawWindow {
            name: "new-year".into(),
            schedule: "0 0 1 1 *".into(),
            duration: "1m".into(),
            timezone: "Europe/Paris".into(),
            ..RawWindow::default()
        },
    ];
}

fn alert_of(service: &str) -> Value {
    let mut alert = opted_in("TcpEndpointDownFast");
    alert["labels"]["service"] = json!(service);
    alert["labels"]["instance"] = json!(format!("{service}:8000"));
    alert
}

/// `POST /alert` as Alertmanager sends it; the decisions answered.
async fn post(h: &Harness, alerts: Vec<Value>) -> Vec<Value> {
    let body = json!({ "version": "4", "status": "firing", "alerts": alerts }).to_string();
    let request = Request::post("/alert")
        .header("authorization", authorization_for("/alert"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let (status, answer) = h.send(request).await;
    assert_eq!(status, 200, "{answer}");
    h.remediator.drain().await;
    answer["decisions"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("{answer}"))
}

#[tokio::test]
async fn an_open_window_pauses_what_it_covers_and_nothing_else() {
    let h = harness(&[crm_plugin()], windows).await;

    // Covered (service="crm"): paused, with the window's id, reason and end.
    let decisions = post(&h, vec![alert_of("crm")]).await;
    assert_eq!(decisions[0]["decision"], "skip", "{decisions:#?}");
    assert_eq!(decisions[0]["reason"], "paused", "{decisions:#?}");
    let detail = decisions[0]["detail"].as_str().unwrap();
    assert!(detail.contains("DB upgrade 4.2"), "{detail}");
    let skip = h.only("decision_skip");
    assert_eq!(skip["pause_id"], "window:db-upgrade", "{skip}");
    assert_eq!(skip["pause_reason"], "DB upgrade 4.2", "{skip}");
    assert_eq!(skip["plugin"], "restart-crm-api", "{skip}");
    let until = skip["paused_until"].as_f64().unwrap();
    assert!(
        until > unix_now() + 3000.0 && until <= unix_now() + 3600.0,
        "{skip}"
    );
    // No cooldown started: nothing in GET /'s cooldowns, nothing started.
    assert!(h.events(&["action_started"]).is_empty());

    // Not covered (service="billing"; the New Year window is closed): it
    // acts — in the same cooldown the paused one would have started.
    let decisions = post(&h, vec![alert_of("billing")]).await;
    assert_eq!(decisions[0]["decision"], "act", "{decisions:#?}");
    assert_eq!(h.events(&["action_started"]).len(), 1);

    // GET /: both windows, one open until its end, one closed with its next start.
    let page = h.status_page().await;
    let listed = page["maintenance"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{page:#}");
    let open = &listed[0];
    assert_eq!(open["name"], "db-upgrade");
    assert_eq!(open["open"], true, "{open:#}");
    assert_eq!(open["match"], r#"service="crm""#);
    assert_eq!(open["timezone"], "UTC");
    assert!(open["until"].as_f64().unwrap() > unix_now(), "{open:#}");
    assert!(
        open["until_rfc3339"].as_str().unwrap().ends_with("+00:00"),
        "{open:#}"
    );
    let closed = &listed[1];
    assert_eq!(closed["name"], "new-year");
    assert_eq!(closed["open"], false, "{closed:#}");
    assert_eq!(closed["until"], Value::Null, "{closed:#}");
    assert!(closed["next_start"].as_f64().unwrap() > unix_now(), "{closed:#}");
    let next = closed["next_start_rfc3339"].as_str().unwrap();
    assert!(
        next.contains("-01-01T00:00:00+01:00"),
        "midnight in Paris: {next}"
    );
    assert_eq!(closed["reason"], "maintenance window \"new-year\"");

    // /metrics: 1 for the open window, 0 for the closed one.
    let text = h.metrics_text().await;
    assert_eq!(
        sample(&text, r#"autoheal_paused{name="db-upgrade",source="window"}"#),
        1.0
    );
    assert_eq!(
        sample(&text, r#"autoheal_paused{name="new-year",source="window"}"#),
        0.0
    );

    // The trail says when it opened, once, and a restart does not say it again.
    let opened = h.wait_for("window_opened", 1, 5).await;
    assert_eq!(opened[0]["name"], "db-upgrade", "{opened:#?}");
    assert_eq!(opened[0]["reason"], "DB upgrade 4.2");
    let h = h.restart(windows).await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(h.events(&["window_opened"]).len(), 1, "{:#?}", h.events(&[]));
    assert!(h.events(&["window_closed"]).is_empty());
    let decisions = post(&h, vec![alert_of("crm")]).await;
    assert_eq!(decisions[0]["reason"], "paused", "{decisions:#?}");
}

#[tokio::test]
async fn a_window_that_is_not_open_lets_every_action_through() {
    let h = harness(&[crm_plugin()], |c| {
        c.maintenance = vec![RawWindow {
            name: "new-year".into(),
            schedule: "0 0 1 1 *".into(),
            duration: "1m".into(),
            plugins: vec!["restart-crm-api".into()],
            ..RawWindow::default()
        }];
    })
    .await;
    let decisions = post(&h, vec![alert_of("crm")]).await;
    assert_eq!(decisions[0]["decision"], "act", "{decisions:#?}");
    assert!(h.events(&["decision_skip"]).is_empty());
    let text = h.metrics_text().await;
    assert_eq!(
        sample(&text, r#"autoheal_paused{name="new-year",source="window"}"#),
        0.0
    );
    let page = h.status_page().await;
    assert_eq!(page["maintenance"][0]["open"], false, "{page:#}");
    assert_eq!(page["maintenance"][0]["plugins"], json!(["restart-crm-api"]));
}
