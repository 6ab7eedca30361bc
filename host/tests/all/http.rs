//! The HTTP surface in-process, through `tower::ServiceExt::oneshot`.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::*;

async fn call(h: &Harness, method: &str, uri: &str, body: impl Into<Body>) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .header("authorization", authorization_for(uri))
        .body(body.into())
        .unwrap();
    let response = autoheal::http::router(h.host.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
    (status, value)
}

fn webhook(alerts: Value) -> String {
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"TcpEndpointDownFast\"}", "status": "firing",
        "receiver": "autoheal", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager.example", "truncatedAlerts": 0, "alerts": alerts,
    })
    .to_string()
}

#[tokio::test]
async fn webhook_happy_path() {
    let h = harness(&[("crm.toml", bundled_manifest())], |_| {}).await;
    let (status, body) = call(
        &h,
        "POST",
        "/alert",
        webhook(json!([opted_in("TcpEndpointDownFast"), opted_in("Other")])),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["received"], 2);
    assert_eq!(body["decisions"][0]["decision"], "act");
    assert_eq!(body["decisions"][0]["plugin"], "restart-crm-api");
    assert_eq!(body["decisions"][0]["mode"], "dry_run");
    assert_eq!(body["decisions"][1]["reason"], "no_plugin");
    h.remediator.drain().await;
    let received = h.only("webhook_received");
    assert_eq!(received["alerts"], 2);
    assert_eq!(received["receiver"], "autoheal");
    let dry = h.only("action_dry_run");
    assert_eq!(dry["target"], "crm-api");
    assert_eq!(dry["generator_url"], "http://prometheus.example/graph");
}

#[tokio::test]
async fn bad_input_is_a_4xx_with_a_reason_and_is_audited() {
    let h = harness(&[], |c| c.max_body_bytes = 2000).await;
    let cases: Vec<(String, StatusCode, &str)> = vec![
        ("{not json".into(), StatusCode::BAD_REQUEST, "malformed JSON"),
        ("".into(), StatusCode::BAD_REQUEST, "malformed JSON"),
        (
            r#"{"version":"4"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing field `alerts`",
        ),
        (
            r#"{"alerts":{}}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid type",
        ),
        (
            r#"{"alerts":[{"labels":{}}]}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing field `status`",
        ),
        (
            r#"{"alerts":[{"status":"firing","labels":{"a":1}}]}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid type",
        ),
        (
            webhook(json!([opted_in(&"X".repeat(3000))])),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than 2000 bytes",
        ),
    ];
    for (body, expected, words) in &cases {
        let (status, reply) = call(&h, "POST", "/alert", body.clone()).await;
        assert_eq!(status, *expected, "{body:.60}: {reply}");
        let error = reply["error"].as_str().unwrap();
        assert!(error.contains(words), "{error:?} should say {words:?}");
    }
    h.remediator.drain().await;
    let rejected = h.events(&["webhook_rejected"]);
    assert_eq!(rejected.len(), cases.len());
    assert_eq!(rejected[6]["status"], 413);
    assert!(h.events(&["webhook_received"]).is_empty());
}

#[tokio::test]
async fn audit_filters() {
    let h = harness(&[("crm.toml", bundled_manifest())], |_| {}).await;
    let before = autoheal_core::util::unix_now();
    for alert in [
        opted_in("TcpEndpointDownFast"),
        opted_in("Other"),
        alert("Quiet", "firing", json!({})),
    ] {
        call(&h, "POST", "/alert", webhook(json!([alert]))).await;
    }
    h.remediator.drain().await;

    let kinds = |v: &Value| -> Vec<String> {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, all) = call(&h, "GET", "/audit", Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["count"], all["events"].as_array().unwrap().len());
    let ids: Vec<u64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "newest last: {ids:?}");

    let (_, skips) = call(&h, "GET", "/audit?kind=decision_skip", Body::empty()).await;
    assert_eq!(kinds(&skips), ["decision_skip", "decision_skip"]);
    let (_, two_kinds) = call(
        &h,
        "GET",
        "/audit?kind=decision_skip,action_dry_run",
        Body::empty(),
    )
    .await;
    assert_eq!(two_kinds["count"], 3);
    let (_, by_alert) = call(&h, "GET", "/audit?alertname=TcpEndpointDownFast", Body::empty()).await;
    assert_eq!(kinds(&by_alert), ["action_started", "action_dry_run"]);
    let (_, text) = call(&h, "GET", "/audit?contains=NOT_ANNOTATED", Body::empty()).await;
    assert_eq!(text["count"], 1);
    assert_eq!(text["events"][0]["alertname"], "Quiet");
    let (_, last) = call(&h, "GET", "/audit?n=2", Body::empty()).await;
    assert_eq!(
        last["events"].as_array().unwrap()[..],
        all["events"].as_array().unwrap()[ids.len() - 2..]
    );
    let (_, recent) = call(&h, "GET", &format!("/audit?since={before}"), Body::empty()).await;
    assert!(
        recent["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["ts"].as_f64().unwrap() >= before)
    );
    assert!(!kinds(&recent).contains(&"host_started".to_owned()));
    let (_, future) = call(
        &h,
        "GET",
        &format!("/audit?since={}", before + 3600.0),
        Body::empty(),
    )
    .await;
    assert_eq!(future["count"], 0);

    for bad in [
        "/audit?n=5001",
        "/audit?n=-1",
        "/audit?since=yesterday",
        "/audit?knd=x",
    ] {
        let (status, reply) = call(&h, "GET", bad, Body::empty()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {reply}");
        assert!(reply["error"].is_string(), "{bad}: {reply}");
    }
}

#[tokio::test]
async fn status_reports_mode_and_plugins() {
    let h = harness(&[("crm.toml", bundled_manifest())], |_| {}).await;
    let (status, body) = call(&h, "GET", "/", Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["enabled"], false);
    assert_eq!(body["dry_run"], true);
    assert_eq!(body["mode"], "dry_run");
    assert_eq!(body["dry_run_reason"], "disabled");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["audit_path"].as_str().unwrap().ends_with("audit.jsonl"));
    // The process's resident memory, as the kernel counts it.
    let (rss, peak) = (&body["memory"]["rss_bytes"], &body["memory"]["peak_rss_bytes"]);
    assert!(rss.as_u64().unwrap() > 1 << 20, "{}", body["memory"]);
    assert!(
        peak.as_u64().unwrap() >= rss.as_u64().unwrap(),
        "{}",
        body["memory"]
    );
    let plugin = &body["plugins"][0];
    assert_eq!(plugin["name"], "restart-crm-api");
    assert_eq!(
        plugin["alertnames"],
        json!([
            "TcpEndpointDownFast",
            "UptimeProbeFailing",
            "CrmMetricsScrapeStale"
        ])
    );
    assert_eq!(plugin["containers"], json!(["crm-api"]));
}
