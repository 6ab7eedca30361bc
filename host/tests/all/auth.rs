//! Who may call what, through the real server on loopback: webhook,
//! operator and read tokens; Host and Origin checks; what a refusal leaves
//! in the audit trail and the metrics (and what it does not: the secret).

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::real::{ServedHost, http_with};
use crate::support::*;

const READ_TOKEN: &str = "test-read-token-0123456789";
const ROTATED_WEBHOOK_TOKEN: &str = "rotated-webhook-token-0123456789";

fn webhook_body() -> String {
    json!({
        "version": "4", "status": "firing", "receiver": "autoheal",
        "alerts": [opted_in("TcpEndpointDownFast")],
    })
    .to_string()
}

async fn call(
    host: &ServedHost,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let (url, method, path, body) = (
        host.url.clone(),
        method.to_owned(),
        path.to_owned(),
        body.to_owned(),
    );
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        http_with(&url, &method, &path, &headers, &body).unwrap()
    })
    .await
    .unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn served(configure: impl FnOnce(&mut autoheal::config::RawConfig)) -> ServedHost {
    let plugins = [("crm.toml", bundled_manifest())];
    ServedHost::start(&plugins, Arc::new(autoheal_containers::NoEngine), configure).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_takes_its_tokens_as_bearer_or_basic_and_refuses_the_rest() {
    let host = served(|c| c.auth.webhook_tokens.push(ROTATED_WEBHOOK_TOKEN.into())).await;
    let body = webhook_body();

    let (status, reply) = call(&host, "POST", "/alert", &[], &body).await;
    assert_eq!(status, 401, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("webhook token"),
        "{reply}"
    );
    let (status, _) = call(
        &host,
        "POST",
        "/alert",
        &[("Authorization", &bearer(OPERATOR_TOKEN))],
        &body,
    )
    .await;
    assert_eq!(status, 401, "an operator token is not a webhook token");
    let (status, _) = call(&host, "POST", "/alert", &[("Authorization", "Bearer ")], &body).await;
    assert_eq!(status, 401);

    // Both tokens of a rotation are accepted, and so is Basic (Alertmanager's basic_auth).
    for token in [WEBHOOK_TOKEN, ROTATED_WEBHOOK_TOKEN] {
        let (status, reply) = call(
            &host,
            "POST",
            "/alert",
            &[("Authorization", &bearer(token))],
            &body,
        )
        .await;
        assert_eq!(status, 200, "{reply}");
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("alertmanager:{WEBHOOK_TOKEN}"));
    let (status, reply) = call(
        &host,
        "POST",
        "/alert",
        &[("Authorization", &format!("Basic {basic}"))],
        &body,
    )
    .await;
    assert_eq!(status, 200, "{reply}");

    // Three refusals, each an event without the secret, and a metric.
    host.remediator.drain().await;
    let failed = host.audit("auth_failed").await;
    assert_eq!(failed.len(), 3, "{failed:#?}");
    assert_eq!(failed[0]["scope"], "webhook");
    assert_eq!(failed[0]["reason"], "missing");
    assert_eq!(failed[1]["reason"], "wrong");
    assert_eq!(failed[2]["reason"], "missing", "an empty bearer is no token");
    assert_eq!(failed[0]["path"], "/alert");
    let trail = std::fs::read_to_string(&host.host.config.audit_path).unwrap();
    for secret in [WEBHOOK_TOKEN, ROTATED_WEBHOOK_TOKEN, OPERATOR_TOKEN] {
        assert!(!trail.contains(secret), "a token reached the audit trail");
    }
    let (_, metrics) = call(&host, "GET", "/metrics", &[], "").await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains("autoheal_auth_failures_total{reason=\"missing\",scope=\"webhook\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("autoheal_auth_failures_total{reason=\"wrong\",scope=\"webhook\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_routes_need_the_operator_token_and_refuse_cross_site_requests() {
    let host = served(|_| {}).await;
    let reload = "/plugins/reload";
    let (status, _) = call(&host, "POST", reload, &[], "").await;
    assert_eq!(status, 401);
    let (status, _) = call(
        &host,
        "POST",
        reload,
        &[("Authorization", &bearer(WEBHOOK_TOKEN))],
        "",
    )
    .await;
    assert_eq!(status, 401, "a webhook token is not an operator token");
    let (status, reply) = call(
        &host,
        "POST",
        reload,
        &[("Authorization", &bearer(OPERATOR_TOKEN))],
        "",
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    // `GET /ack` changes state too, so it is an operator route.
    let (status, _) = call(
        &host,
        "GET",
        "/ack?labels=%7B%22alertname%22%3A%22X%22%7D",
        &[],
        "",
    )
    .await;
    assert_eq!(status, 401);

    // A page on another site, even one that holds the token, cannot change state.
    let operator = bearer(OPERATOR_TOKEN);
    for cross in [
        ("Origin", "http://evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        let (status, reply) = call(&host, "POST", reload, &[("Authorization", &operator), cross], "").await;
        assert_eq!(status, 403, "{cross:?}: {reply}");
        assert!(reply["error"].as_str().unwrap().contains("cross-site"), "{reply}");
    }
    // The console's own page is same-origin.
    let own = host.url.clone();
    let (status, _) = call(
        &host,
        "POST",
        reload,
        &[("Authorization", &operator), ("Origin", &own)],
        "",
    )
    .await;
    assert_eq!(status, 200);

    // A DNS-rebinding page reaches the host under its own name.
    let (status, reply) = call(&host, "GET", "/", &[("Host", "rebind.evil.example:9009")], "").await;
    assert_eq!(status, 403, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("Host"), "{reply}");

    host.remediator.drain().await;
    let reasons: Vec<String> = host
        .audit("auth_failed")
        .await
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["scope"].as_str().unwrap(),
                e["reason"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "operator missing",
            "operator wrong",
            "operator missing",
            "operator cross_origin",
            "operator cross_origin",
            "read host_not_allowed"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_operator_token_operator_routes_are_off() {
    let host = served(|c| c.auth.operator_tokens.clear()).await;
    let (status, reply) = call(
        &host,
        "POST",
        "/plugins/reload",
        &[("Authorization", &bearer(OPERATOR_TOKEN))],
        "",
    )
    .await;
    assert_eq!(status, 403, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("AUTOHEAL_OPERATOR_TOKEN"),
        "{reply}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_routes_are_open_unless_a_read_token_is_configured() {
    let open = served(|_| {}).await;
    for path in ["/", "/audit?n=1", "/metrics", "/console"] {
        let (status, reply) = call(&open, "GET", path, &[], "").await;
        assert_eq!(status, 200, "{path}: {reply}");
    }

    let closed = served(|c| c.auth.read_tokens = vec![READ_TOKEN.into()]).await;
    for path in ["/", "/audit?n=1", "/metrics", "/vision"] {
        let (status, _) = call(&closed, "GET", path, &[], "").await;
        assert_eq!(status, 401, "{path}");
        for token in [READ_TOKEN, OPERATOR_TOKEN] {
            let (status, reply) = call(&closed, "GET", path, &[("Authorization", &bearer(token))], "").await;
            assert_eq!(status, 200, "{path}: {reply}");
        }
    }
    // The console page holds no data and asks for the token itself.
    let (status, _) = call(&closed, "GET", "/console", &[], "").await;
    assert_eq!(status, 200);
    // A browser's EventSource cannot send headers: the stream takes `access_token`.
    let url = closed.url.clone();
    let first = tokio::task::spawn_blocking(move || {
        use std::io::{BufRead, BufReader, Write};
        let addr = url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET /events?last_event_id=0&access_token={READ_TOKEN} HTTP/1.1\r\nHost: {addr}\r\n\r\n"
        )
        .unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
}

/// A flood of bad requests is counted, but fills the audit trail only up to
/// a budget per second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refusals_is_counted_but_not_all_audited() {
    let host = served(|_| {}).await;
    let url = host.url.clone();
    let codes = tokio::task::spawn_blocking(move || {
        (0..200)
            .map(|_| http_with(&url, "POST", "/plugins/reload", &[], "").unwrap().0)
            .collect::<Vec<u16>>()
    })
    .await
    .unwrap();
    assert!(codes.iter().all(|c| *c == 401));
    host.remediator.drain().await;
    let audited = host.audit("auth_failed").await.len();
    // 200 requests take at most a few seconds here: a few budgets of 20.
    assert!((20..200).contains(&audited), "{audited} audited");
    let (_, metrics) = call(&host, "GET", "/metrics", &[], "").await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains("autoheal_auth_failures_total{reason=\"missing\",scope=\"operator\"} 200"),
        "{metrics}"
    );
}

/// The value `compose.yaml` gives `variable` in `service`'s environment.
fn compose_env(service: &str, variable: &str) -> String {
    let compose = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/replicas/compose.yaml"),
    )
    .unwrap();
    let line = compose
        .lines()
        .skip_while(|l| !l.starts_with(&format!("  {service}:")))
        .find(|l| l.contains(variable))
        .unwrap_or_else(|| panic!("compose.yaml gives {service} no {variable}"));
    let after = &line[line.find(variable).unwrap() + variable.len()..];
    let value = after.trim_start_matches([':', ' ', '"']);
    value[..value.find(['"', ',', ' ', '}']).unwrap_or(value.len())].to_owned()
}

/// The replicas of `docs/replicas/compose.yaml` receive Alertmanager's
/// webhooks at their service names: each replica's `AUTOHEAL_PUBLIC_URL`
/// (as the recipe sets it) makes its own name an accepted Host, and
/// `AUTOHEAL_ALLOWED_HOSTS` adds more; other names are still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compose_replica_takes_webhooks_addressed_to_its_service_name() {
    let public_url = compose_env("autoheal-1", "AUTOHEAL_PUBLIC_URL");
    assert_eq!(public_url, "http://autoheal-1:9009");
    let host = served(|c| {
        let env = [
            ("AUTOHEAL_PUBLIC_URL", public_url.clone()),
            ("AUTOHEAL_ALLOWED_HOSTS", "autoheal.example, lb".to_owned()),
        ];
        c.apply_env(|name| env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()))
            .unwrap();
    })
    .await;
    let token = bearer(WEBHOOK_TOKEN);
    for (host_header, expected) in [
        ("autoheal-1:9009", 200),
        ("lb:9009", 200),
        ("autoheal.example", 200),
        ("autoheal-2:9009", 403),
    ] {
        let (status, reply) = call(
            &host,
            "POST",
            "/alert",
            &[("Host", host_header), ("Authorization", &token)],
            &webhook_body(),
        )
        .await;
        assert_eq!(status, expected, "Host: {host_header}: {reply}");
    }
}
