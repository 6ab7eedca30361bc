//! Named machine tokens and the role each route needs, through the real
//! server on loopback (and the real binary, for its log): `ci` operates
//! the `restart-*` plugins, `dash` only reads, and the shared operator
//! token keeps doing everything. Who acted is the verified caller; what a
//! caller typed as `by` is only a comment; no token reaches the trail or
//! the log.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::real::{ServedHost, free_port, http_with};
use crate::support::*;

const CI_TOKEN: &str = "ci-named-token-0123456789";
pub(crate) const DASH_TOKEN: &str = "dash-named-token-0123456789";

/// `[auth.tokens.ci]` (operator on `restart-*`, from a file) and
/// `[auth.tokens.dash]` (viewer, from a file), beside the shared tokens.
pub(crate) fn named_tokens(dir: &Path) -> std::collections::BTreeMap<String, autoheal::config::RawToken> {
    let ci = dir.join("ci-token");
    std::fs::write(&ci, format!("# the CI pipeline's\n{CI_TOKEN}\n")).unwrap();
    let dash = dir.join("dash-token");
    std::fs::write(&dash, format!("{DASH_TOKEN}\n")).unwrap();
    [
        (
            "ci",
            autoheal::config::RawToken {
                scopes: vec!["operator".into()],
                plugins: Some(vec!["restart-*".into()]),
                file: Some(ci),
                env: None,
            },
        ),
        (
            "dash",
            autoheal::config::RawToken {
                scopes: vec!["viewer".into()],
                plugins: None,
                file: Some(dash),
                env: None,
            },
        ),
    ]
    .into_iter()
    .map(|(name, token)| (name.to_owned(), token))
    .collect()
}

async fn call(host: &ServedHost, method: &str, path: &str, token: &str, body: &str) -> (u16, Value) {
    let (url, method, path, body) = (
        host.url.clone(),
        method.to_owned(),
        path.to_owned(),
        body.to_owned(),
    );
    let authorization = format!("Bearer {token}");
    tokio::task::spawn_blocking(move || {
        http_with(&url, &method, &path, &[("Authorization", &authorization)], &body).unwrap()
    })
    .await
    .unwrap()
}

fn error(reply: &Value) -> &str {
    reply["error"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_tokens_act_within_their_roles_and_the_trail_names_them() {
    let tokens_dir = tempfile::tempdir().unwrap();
    let tokens = named_tokens(tokens_dir.path());
    let plugins = [("crm.toml", bundled_manifest())];
    let host = ServedHost::start(&plugins, Arc::new(autoheal_containers::NoEngine), |c| {
        c.auth.tokens = tokens
    })
    .await;

    // dash reads, and nothing more: the refusal names its rule.
    let (status, reply) = call(&host, "GET", "/audit?n=1", DASH_TOKEN, "").await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = call(
        &host,
        "POST",
        "/admin/dry-run",
        DASH_TOKEN,
        r#"{"dry_run": true}"#,
    )
    .await;
    assert_eq!(status, 403, "{reply}");
    assert!(
        error(&reply).contains("[auth.tokens.dash]") && error(&reply).contains("operator"),
        "{reply}"
    );
    let (status, me) = call(&host, "GET", "/auth/me", DASH_TOKEN, "").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        me,
        json!({"kind": "token", "id": "dash", "grants": [
            {"role": "viewer", "plugins": ["*"], "rule": "[auth.tokens.dash]"}
        ]})
    );

    // ci pauses a restart-* plugin, with its own comment...
    let pause =
        json!({"plugin": "restart-crm-api", "duration": "1h", "reason": "deploy", "by": "pipeline 4711"});
    let (status, paused) = call(&host, "POST", "/pauses", CI_TOKEN, &pause.to_string()).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(
        (&paused["by"], &paused["by_kind"]),
        (&json!("ci"), &json!("token"))
    );
    // ...but not every plugin, nor the kill switch, nor reads.
    let everything = json!({"duration": "1h", "reason": "deploy"});
    let (status, reply) = call(&host, "POST", "/pauses", CI_TOKEN, &everything.to_string()).await;
    assert_eq!(status, 403, "{reply}");
    let (status, reply) = call(&host, "POST", "/admin/enabled", CI_TOKEN, r#"{"enabled": false}"#).await;
    assert_eq!(status, 403, "{reply}");
    assert!(
        error(&reply).contains("[auth.tokens.ci] (plugins restart-*)"),
        "{reply}"
    );
    let (status, _) = call(&host, "GET", "/", CI_TOKEN, "").await;
    assert_eq!(status, 403, "ci has no viewer scope");
    let (status, _) = call(&host, "POST", "/plugins/reload", CI_TOKEN, "").await;
    assert_eq!(status, 403, "a reload is every plugin's");
    let (status, reply) = call(
        &host,
        "POST",
        "/plugins/restart-crm-api/test",
        CI_TOKEN,
        &json!([opted_in("TcpEndpointDownFast")]).to_string(),
    )
    .await;
    assert_ne!(status, 403, "ci operates restart-crm-api: {reply}");
    let id = paused["id"].as_str().unwrap().to_owned();
    let (status, reply) = call(&host, "DELETE", &format!("/pauses/{id}"), CI_TOKEN, "").await;
    assert_eq!(status, 200, "{reply}");

    // The shared operator token still does everything; its typed `by` is a comment.
    let (status, reply) = call(
        &host,
        "POST",
        "/admin/dry-run",
        OPERATOR_TOKEN,
        r#"{"dry_run": true, "by": "alice typed this"}"#,
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = call(&host, "POST", "/pauses", OPERATOR_TOKEN, &everything.to_string()).await;
    assert_eq!(status, 200, "{reply}");
    let (status, me) = call(&host, "GET", "/auth/me", OPERATOR_TOKEN, "").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (&me["kind"], &me["id"]),
        (&json!("shared_token"), &json!("operator"))
    );

    host.remediator.drain().await;
    let started = host.audit("pause_started").await;
    assert_eq!(started.len(), 2, "{started:#?}");
    assert_eq!(
        (
            &started[0]["by"],
            &started[0]["by_kind"],
            &started[0]["by_comment"]
        ),
        (&json!("ci"), &json!("token"), &json!("pipeline 4711"))
    );
    assert_eq!(
        (&started[1]["by"], &started[1]["by_kind"]),
        (&json!("operator"), &json!("shared_token"))
    );
    let ended = host.audit("pause_ended").await;
    assert_eq!(
        (&ended[0]["by"], &ended[0]["by_kind"]),
        (&json!("ci"), &json!("token"))
    );
    let flips = host.audit("mode_changed").await;
    let flip = flips.last().unwrap();
    assert_eq!(
        (&flip["by"], &flip["by_kind"], &flip["by_comment"]),
        (
            &json!("operator"),
            &json!("shared_token"),
            &json!("alice typed this")
        )
    );
    let refusals: Vec<String> = host
        .audit("auth_failed")
        .await
        .iter()
        .map(|e| format!("{} {} {}", e["reason"], e["path"], e["role"]))
        .collect();
    assert_eq!(
        refusals,
        [
            r#""forbidden" "/admin/dry-run" "operator of every plugin""#,
            r#""forbidden" "/pauses" "operator of every plugin""#,
            r#""forbidden" "/admin/enabled" "operator of every plugin""#,
            r#""forbidden" "/" "viewer of every plugin""#,
            r#""forbidden" "/plugins/reload" "operator of every plugin""#,
        ]
    );
    let metrics = host.get_ok("/metrics").await;
    assert_eq!(
        sample(
            metrics.as_str().unwrap(),
            "autoheal_auth_failures_total{reason=\"forbidden\",scope=\"operator\"}"
        ),
        4.0
    );

    // No token value anywhere in the trail.
    let trail = std::fs::read_to_string(&host.host.config.audit_path).unwrap();
    for token in [CI_TOKEN, DASH_TOKEN, OPERATOR_TOKEN, WEBHOOK_TOKEN] {
        assert!(!trail.contains(token), "a token in the trail");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_operator_token_alone_opens_the_operator_routes() {
    let tokens_dir = tempfile::tempdir().unwrap();
    let tokens = named_tokens(tokens_dir.path());
    let plugins = [("crm.toml", bundled_manifest())];
    let host = ServedHost::start(&plugins, Arc::new(autoheal_containers::NoEngine), |c| {
        c.auth.operator_tokens.clear();
        c.auth.tokens = tokens;
    })
    .await;
    // Not `not_configured`: ci can reach the route (and may pause its plugin).
    let pause = json!({"plugin": "restart-crm-api", "duration": "1h", "reason": "deploy"});
    let (status, reply) = call(&host, "POST", "/pauses", CI_TOKEN, &pause.to_string()).await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = call(
        &host,
        "POST",
        "/pauses",
        "not-a-token-0123456789",
        &pause.to_string(),
    )
    .await;
    assert_eq!(status, 401, "{reply}");
}

/// The real binary, its log in a file: refusals and acts by named tokens
/// are logged and audited without the tokens themselves.
#[test]
fn no_token_reaches_the_log_or_the_trail() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = stage_plugins(
        dir.path(),
        &["restart_container"],
        &[("restart-crm-api.toml", bundled_manifest())],
    );
    std::fs::write(
        dir.path().join("autoheal.toml"),
        "[auth.tokens.ci]\nscopes = [\"operator\"]\nplugins = [\"restart-*\"]\nenv = \"AUTOHEAL_TEST_CI_TOKEN\"\n",
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let log_path = dir.path().join("autoheal.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_autoheal"))
        .args(["serve", "--listen", &addr, "--config"])
        .arg(dir.path().join("autoheal.toml"))
        .arg("--plugins-dir")
        .arg(&plugins)
        .arg("--audit-path")
        .arg(dir.path().join("audit.jsonl"))
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .env_remove("AUTOHEAL_ENABLED")
        .env_remove("AUTOHEAL_DRY_RUN")
        .env_remove("AUTOHEAL_LOG")
        .env("AUTOHEAL_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("AUTOHEAL_TEST_CI_TOKEN", CI_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let bearer = |token: &str| format!("Bearer {token}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(
        http_with(
            &base,
            "GET",
            "/",
            &[("Authorization", &bearer(OPERATOR_TOKEN))],
            ""
        ),
        Ok((200, _))
    ) {
        assert!(Instant::now() < deadline, "host did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ci = bearer(CI_TOKEN);
    let (status, reply) = http_with(
        &base,
        "POST",
        "/admin/dry-run",
        &[("Authorization", &ci)],
        r#"{"dry_run": true}"#,
    )
    .unwrap();
    assert_eq!(status, 403, "{reply}");
    let pause = json!({"plugin": "restart-crm-api", "duration": "1h", "reason": "deploy"}).to_string();
    let (status, reply) = http_with(&base, "POST", "/pauses", &[("Authorization", &ci)], &pause).unwrap();
    assert_eq!(status, 200, "{reply}");
    let wrong = bearer("wrong-token-but-long-enough");
    let (status, _) = http_with(&base, "POST", "/pauses", &[("Authorization", &wrong)], &pause).unwrap();
    assert_eq!(status, 401);
    let _ = child.kill();
    let _ = child.wait();

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("request refused") && l.contains("reason=\"forbidden\"")),
        "{log}"
    );
    let trail = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(trail.contains(r#""by":"ci""#), "{trail}");
    for token in [CI_TOKEN, OPERATOR_TOKEN, "wrong-token-but-long-enough"] {
        assert!(!log.contains(token), "a token in the log");
        assert!(!trail.contains(token), "a token in the trail");
    }
}
