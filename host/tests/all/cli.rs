//! The operator's commands (`autoheal status|enable|disable|dry-run|audit|
//! approvals|approve|deny|completions`), as the real binary, against a host
//! serving on loopback.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::real::{ServedHost, http};
use crate::support::*;

fn autoheal(url: &str, args: &[&str], token: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_autoheal"));
    // Only what the test gives: no token or URL from the caller's environment.
    command
        .env_clear()
        .env("AUTOHEAL_URL", url)
        .env("NO_COLOR", "1")
        .args(args);
    if let Some(token) = token {
        command.env("AUTOHEAL_OPERATOR_TOKEN", token);
    }
    command
}

async fn run(url: &str, args: &[&str], token: Option<&str>) -> Output {
    let mut command = autoheal(url, args, token);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

async fn served() -> ServedHost {
    let fake = Arc::new(autoheal_containers::FakeRuntime::new());
    fake.add_running("crm-api", Duration::from_secs(3600));
    ServedHost::start(&[crm_plugin()], fake, |_| {}).await
}

async fn post_alert(url: &str, alertname: &str) {
    let body = json!({"alerts": [{"status": "firing", "labels": {"alertname": alertname},
        "annotations": {"autoheal": "true"}}]})
    .to_string();
    let url = url.to_owned();
    let (status, answer) = tokio::task::spawn_blocking(move || http(&url, "POST", "/alert", &body).unwrap())
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn status_and_the_switches_through_the_command_line() {
    let served = served().await;
    let url = &served.url;

    let text = stdout(&run(url, &["status"], Some(OPERATOR_TOKEN)).await);
    assert!(text.contains("mode dry_run"), "{text}");
    assert!(text.contains("restart-crm-api"), "{text}");
    assert!(
        text.contains("with its segments,") && text.contains("free on its disk"),
        "{text}"
    );
    let json: Value = serde_json::from_str(&stdout(&run(url, &["status", "--json"], None).await)).unwrap();
    assert_eq!(json["service"], "autoheal");
    assert_eq!(json["enabled"], false);

    // Flipping needs the operator token; without it the host's refusal is shown.
    let refused = run(url, &["enable"], None).await;
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("403") || error.contains("401"), "{error}");

    let said = stdout(&run(url, &["enable", "--by", "alice"], Some(OPERATOR_TOKEN)).await);
    assert!(said.contains("enabled true"), "{said}");
    assert!(served.host.switches.state().enabled);
    stdout(&run(url, &["dry-run", "off", "--by", "alice"], Some(OPERATOR_TOKEN)).await);
    assert!(!served.host.switches.state().dry_run);
    stdout(&run(url, &["dry-run", "on"], Some(OPERATOR_TOKEN)).await);
    stdout(&run(url, &["disable", "--by", "bob"], Some(OPERATOR_TOKEN)).await);
    let state = served.host.switches.state();
    assert!(!state.enabled && state.dry_run);
    let changes = served.audit("mode_changed").await;
    // `--by` is a comment; `by` is who the token proves.
    let by: Vec<&str> = changes.iter().map(|e| e["by"].as_str().unwrap_or("-")).collect();
    assert!(by.iter().all(|by| *by == "operator"), "{by:?}");
    let typed: Vec<&str> = changes
        .iter()
        .map(|e| e["by_comment"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(typed.first(), Some(&"alice"));
    assert_eq!(typed.last(), Some(&"bob"));
    assert_eq!(changes.len(), 4);

    let bash = stdout(&run(url, &["completions", "bash"], None).await);
    assert!(
        bash.contains("autoheal") && bash.contains("dry-run"),
        "{}",
        &bash[..200.min(bash.len())]
    );
}

#[tokio::test]
async fn audit_prints_the_trail_from_the_host_and_from_the_file_alike() {
    let served = served().await;
    let url = &served.url;
    post_alert(url, "TcpEndpointDownFast").await;
    // Its action ends before the next alert is decided, so the trail's order is fixed.
    served
        .wait_for("action_dry_run", 1, Duration::from_secs(10))
        .await;
    post_alert(url, "DiskFull").await;
    served.wait_for("decision_skip", 1, Duration::from_secs(10)).await;

    let lines = stdout(
        &run(
            url,
            &["audit", "--kind", "decision_skip,action_dry_run", "--json"],
            None,
        )
        .await,
    );
    let events: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["action_dry_run", "decision_skip"], "{lines}");

    let text = stdout(
        &run(
            url,
            &["audit", "--alertname", "TcpEndpointDownFast", "-n", "5"],
            None,
        )
        .await,
    );
    let row = text
        .lines()
        .find(|l| l.contains("action_dry_run"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        row.contains("TcpEndpointDownFast")
            && row.contains("restart-crm-api")
            && row.contains("crm-api")
            && row.contains("dry-run"),
        "{row}"
    );
    assert!(!text.contains("DiskFull"), "{text}");

    // The same filter on the trail file, without a host: the same events.
    let trail = served.host.audit.path().display().to_string();
    served.host.audit.flush().await.unwrap();
    let from_file = stdout(
        &run(
            "http://127.0.0.1:9",
            &[
                "audit",
                "--file",
                &trail,
                "--kind",
                "decision_skip,action_dry_run",
                "--json",
            ],
            None,
        )
        .await,
    );
    let ids = |text: &str| -> Vec<u64> {
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(ids(&from_file), ids(&lines));
    let contains = stdout(
        &run(
            url,
            &["audit", "--contains", "diskfull", "--since", "10m", "--json"],
            None,
        )
        .await,
    );
    assert!(
        contains.lines().count() >= 1 && contains.lines().all(|l| l.to_lowercase().contains("diskfull")),
        "{contains}"
    );

    let bad = run(url, &["audit", "--since", "soon"], None).await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));
}

#[tokio::test]
async fn audit_follow_prints_new_events_as_they_happen() {
    let served = served().await;
    let url = served.url.clone();
    let mut child = autoheal(
        &url,
        &[
            "audit",
            "--follow",
            "--kind",
            "action_dry_run",
            "-n",
            "0",
            "--json",
        ],
        None,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    // It says when it follows; what happens from then on is printed.
    let said = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stderr).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert!(said.contains("following new events"), "{said}");
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    });
    post_alert(&url, "TcpEndpointDownFast").await;
    let line = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert_eq!(event["kind"], "action_dry_run");
    assert_eq!(event["alertname"], "TcpEndpointDownFast");
}

/// `autoheal ack` makes a real silence in a real Alertmanager, through the host.
#[tokio::test]
async fn ack_silences_in_alertmanager_through_the_host() {
    let (served, alertmanager) = crate::real::host_with_alertmanager().await;
    let url = &served.url;
    let said = stdout(
        &run(
            url,
            &[
                "ack",
                "alertname=\"CrmDown\", service=~\"crm.*\"",
                "--for",
                "2h",
                "--comment",
                "deploying",
            ],
            Some(OPERATOR_TOKEN),
        )
        .await,
    );
    assert!(said.starts_with("silence "), "{said}");
    let id = said.split_whitespace().nth(1).unwrap().to_owned();
    let am = alertmanager.url.clone();
    let silence_id = id.clone();
    let silence = tokio::task::spawn_blocking(move || {
        crate::real::http_with(&am, "GET", &format!("/api/v2/silence/{silence_id}"), &[], "").unwrap()
    })
    .await
    .unwrap();
    assert_eq!(silence.0, 200, "{}", silence.1);
    assert_eq!(silence.1["comment"], "deploying");
    assert_eq!(silence.1["matchers"].as_array().unwrap().len(), 2);
    // `silences` lists it from Alertmanager, as autoheal's, with its expiry.
    let listed = stdout(&run(url, &["silences", "--alertmanager-url", &alertmanager.url], None).await);
    let row = listed
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        row.contains("active") && row.contains("alertname=\"CrmDown\"") && row.contains("deploying"),
        "{row}"
    );
    // An ack the host refuses (no equality matcher) says why and exits non-zero.
    let refused = run(url, &["ack", "alertname=~\".+\""], Some(OPERATOR_TOKEN)).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("equality matcher"));
}

/// `autoheal smoke` against a real host and a real Alertmanager: every check
/// passes; with Alertmanager away, that check fails and the exit is 1.
#[tokio::test]
async fn smoke_checks_a_deployment_end_to_end() {
    let (served, alertmanager) = crate::real::host_with_alertmanager().await;
    // Alertmanager is where the host says it is (its `alertmanager_url`).
    let mut command = autoheal(&served.url, &["smoke"], Some(OPERATOR_TOKEN));
    command.env("AUTOHEAL_WEBHOOK_TOKEN", WEBHOOK_TOKEN);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let report = stdout(&output);
    assert!(report.contains("all checks passed"), "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("PASS") && l.contains("Alertmanager") && l.contains(&alertmanager.url)),
        "{report}"
    );
    for check in [
        "health",
        "console",
        "webhook",
        "event stream",
        "audit since",
        "metrics",
        "Alertmanager",
    ] {
        assert!(
            report.lines().any(|l| l.starts_with("PASS") && l.contains(check)),
            "{check}: {report}"
        );
    }
    // The test alert was decided, never acted on.
    let skips = served.audit("decision_skip").await;
    assert!(
        skips
            .iter()
            .any(|e| e["alertname"] == "AutohealSmokeTest" && e["reason"] == "not_annotated")
    );
    assert!(served.audit("action_started").await.is_empty());

    let mut command = autoheal(
        &served.url,
        &["smoke", "--alertmanager-url", "http://127.0.0.1:9"],
        None,
    );
    command.env("AUTOHEAL_WEBHOOK_TOKEN", WEBHOOK_TOKEN);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains("Alertmanager")),
        "{report}"
    );
}

/// Man pages come from the same clap definitions as `--help`.
#[tokio::test]
async fn man_pages_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    stdout(&run("http://127.0.0.1:9", &["man", &path], None).await);
    for page in [
        "autoheal.1",
        "autoheal-audit.1",
        "autoheal-smoke.1",
        "autoheal-dry-run.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}");
    }
    let audit = std::fs::read_to_string(dir.path().join("autoheal-audit.1")).unwrap();
    assert!(audit.contains("follow"), "the page documents the flags");
}

/// The original system's trail (Python's `json.dumps`: spaces, no `id`)
/// reads with `autoheal audit --file`, filters and all, for a switch-over.
#[tokio::test]
async fn the_original_systems_trail_reads_with_audit_file() {
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("audit.jsonl");
    std::fs::write(
        &trail,
        concat!(
            r#"{"ts": 1730540000.5, "kind": "webhook_received", "alerts": 1}"#, "\n",
            r#"{"ts": 1730540000.6, "kind": "action_dry_run", "alertname": "TcpEndpointDownFast", "cmd": "docker restart crm-api"}"#, "\n",
            r#"{"ts": 1730540100.0, "kind": "decision_skip", "alertname": "TcpEndpointDownFast", "reason": "cooldown"}"#, "\n",
            r#"{"ts": 1730540200.0, "kind": "action_fail", "alertname": "UptimeProbeFailing", "cmd": "docker restart crm-api", "error": "exit 1"}"#, "\n",
        ),
    )
    .unwrap();
    let path = trail.display().to_string();
    let text = stdout(&run("http://127.0.0.1:9", &["audit", "--file", &path], None).await);
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.contains("2024-11-02T09:33:20Z"), "times are shown: {text}");
    let fail = text.lines().find(|l| l.contains("action_fail")).unwrap();
    assert!(
        fail.contains("UptimeProbeFailing") && fail.contains("failed: exit 1"),
        "{fail}"
    );
    let skips = stdout(
        &run(
            "http://127.0.0.1:9",
            &["audit", "--file", &path, "--kind", "decision_skip", "--json"],
            None,
        )
        .await,
    );
    assert_eq!(skips.lines().count(), 1);
    let since = stdout(
        &run(
            "http://127.0.0.1:9",
            &["audit", "--file", &path, "--since", "1730540150", "--json"],
            None,
        )
        .await,
    );
    assert_eq!(since.lines().count(), 1, "{since}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_are_listed_approved_and_denied_from_the_command_line() {
    let fake = Arc::new(autoheal_containers::FakeRuntime::new());
    fake.add_running("crm-api", Duration::from_secs(3600));
    // One cooldown (and so one approval) per instance.
    let plugin =
        crm_plugin_with("[policy]\napproval = \"required\"\n[cooldown_key]\nlabels = [\"instance\"]");
    let served = ServedHost::start(&[plugin], fake.clone(), |c| {
        real(c);
        c.default_cooldown_sec = 0;
    })
    .await;
    let url = &served.url;
    assert!(stdout(&run(url, &["approvals"], Some(OPERATOR_TOKEN)).await).contains("no action waits"));

    for instance in ["a", "b"] {
        let body = json!({"alerts": [{"status": "firing",
            "labels": {"alertname": "TcpEndpointDownFast", "instance": instance},
            "annotations": {"autoheal": "true"}}]})
        .to_string();
        let url = url.clone();
        tokio::task::spawn_blocking(move || http(&url, "POST", "/alert", &body).unwrap())
            .await
            .unwrap();
    }
    let requests = served
        .wait_for("approval_requested", 2, Duration::from_secs(30))
        .await;
    let ids: Vec<String> = requests
        .iter()
        .map(|r| r["approval"].as_str().unwrap().to_owned())
        .collect();
    let listed = stdout(&run(url, &["approvals"], Some(OPERATOR_TOKEN)).await);
    for id in &ids {
        assert!(
            listed.contains(&format!("{id}  restart-crm-api on TcpEndpointDownFast")),
            "{listed}"
        );
    }
    assert!(
        listed.contains("    restart crm-api — running, up 1h 0m"),
        "{listed}"
    );

    let refused = run(url, &["approve", &ids[0]], None).await;
    assert!(!refused.status.success(), "approving needs the operator token");
    assert!(fake.restarts().is_empty());

    let said = stdout(&run(url, &["approve", &ids[0], "--by", "alice"], Some(OPERATOR_TOKEN)).await);
    assert!(said.contains("granted: act restart-crm-api (real)"), "{said}");
    let said = stdout(
        &run(
            url,
            &["deny", &ids[1], "--comment", "later"],
            Some(OPERATOR_TOKEN),
        )
        .await,
    );
    assert!(said.contains("denied"), "{said}");
    served.remediator.drain().await;
    assert_eq!(fake.restarts(), vec!["crm-api".to_owned()]);

    let twice = run(url, &["approve", &ids[0]], Some(OPERATOR_TOKEN)).await;
    assert!(!twice.status.success());
    let error = String::from_utf8_lossy(&twice.stderr);
    assert!(
        error.contains("409") && error.contains("approval_granted"),
        "{error}"
    );
    let bad = run(url, &["approve", "../admin"], Some(OPERATOR_TOKEN)).await;
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not an approval id"));
    let denied = served.audit("approval_denied").await.remove(0);
    assert_eq!(denied["comment"], "later");
    assert_eq!(
        denied["by_comment"], "autoheal-cli",
        "no --by and no $USER in the test's environment"
    );
}

/// `silences` and `vision` read the Alertmanager and Prometheus the host is
/// configured with (here on ports that are not the defaults), asked through
/// `GET /`; a flag still wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_and_vision_use_the_hosts_alertmanager_and_prometheus() {
    let (alertmanager, prometheus) = tokio::task::spawn_blocking(|| {
        let alertmanager =
            crate::real::Alertmanager::start(&format!("http://127.0.0.1:{}/alert", crate::real::free_port()));
        let prometheus = crate::real::Prometheus::start(crate::real::free_port(), &[]);
        (alertmanager, prometheus)
    })
    .await
    .unwrap();
    assert!(!alertmanager.url.ends_with(":9093") && !prometheus.url.ends_with(":9090"));
    let fake = Arc::new(autoheal_containers::FakeRuntime::new());
    let (am, prom) = (alertmanager.url.clone(), prometheus.url.clone());
    let served = ServedHost::start(&[crm_plugin()], fake, move |c| {
        c.alertmanager_url = am.into();
        c.prometheus_url = prom;
    })
    .await;
    let url = &served.url;
    let status: Value = serde_json::from_str(&stdout(&run(url, &["status", "--json"], None).await)).unwrap();
    assert_eq!(status["alertmanager_url"], alertmanager.url.as_str());
    assert_eq!(status["prometheus_url"], prometheus.url.as_str());

    let said = stdout(
        &run(
            url,
            &["ack", "alertname=\"CrmDown\"", "--comment", "from the host's URL"],
            Some(OPERATOR_TOKEN),
        )
        .await,
    );
    let id = said.split_whitespace().nth(1).unwrap().to_owned();
    let listed = stdout(&run(url, &["silences"], None).await);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("from the host's URL")),
        "{listed}"
    );
    let elsewhere = run(
        url,
        &["silences", "--alertmanager-url", "http://127.0.0.1:9"],
        None,
    )
    .await;
    assert!(!elsewhere.status.success());
    assert!(
        String::from_utf8_lossy(&elsewhere.stderr).contains("127.0.0.1:9/"),
        "{}",
        String::from_utf8_lossy(&elsewhere.stderr)
    );

    let report: Value = serde_json::from_str(&stdout(&run(url, &["vision", "--json"], None).await)).unwrap();
    assert_eq!(report["prometheus"]["url"], prometheus.url.as_str(), "{report:#}");
    assert_eq!(report["prometheus"]["reachable"], true, "{report:#}");
    assert_eq!(
        report["alertmanager"]["url"],
        alertmanager.url.as_str(),
        "{report:#}"
    );
    assert_eq!(report["alertmanager"]["reachable"], true, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pauses_are_made_listed_and_resumed_from_the_command_line() {
    let served = served().await;
    let url = &served.url;
    assert!(stdout(&run(url, &["pauses"], Some(OPERATOR_TOKEN)).await).contains("no pause is active"));

    let said = stdout(
        &run(
            url,
            &[
                "pause",
                "--plugin",
                "restart-crm-api",
                "--match",
                r#"service="crm""#,
                "--for",
                "2h",
                "--reason",
                "release 4.2",
                "--by",
                "alice",
            ],
            Some(OPERATOR_TOKEN),
        )
        .await,
    );
    assert!(
        said.starts_with(r#"paused plugin restart-crm-api, alerts service="crm" until "#),
        "{said}"
    );
    let started = served.audit("pause_started").await.remove(0);
    let id = started["pause_id"].as_str().unwrap().to_owned();
    assert!(said.contains(&format!("(id {id};")), "{said}");
    assert_eq!(
        (&started["by"], &started["by_comment"]),
        (&json!("operator"), &json!("alice"))
    );

    let listed = stdout(&run(url, &["pauses"], Some(OPERATOR_TOKEN)).await);
    assert!(
        listed.contains(&id) && listed.contains("release 4.2") && listed.contains("alice"),
        "{listed}"
    );

    // The bounds are the command's to name, before the host is asked.
    let long = run(
        url,
        &["pause", "--for", "8d", "--reason", "r"],
        Some(OPERATOR_TOKEN),
    )
    .await;
    assert!(!long.status.success());
    assert!(String::from_utf8_lossy(&long.stderr).contains("at most 7 days"));
    let no_reason = run(url, &["pause", "--for", "1h"], Some(OPERATOR_TOKEN)).await;
    assert!(!no_reason.status.success(), "--reason is required");
    let refused = run(url, &["resume", &id], None).await;
    assert!(!refused.status.success(), "resuming needs the operator token");

    let said = stdout(&run(url, &["resume", &id], Some(OPERATOR_TOKEN)).await);
    assert!(said.contains(&format!("pause {id}: release 4.2")), "{said}");
    let ended = served.audit("pause_ended").await.remove(0);
    assert_eq!(
        (&ended["why"], &ended["by"], &ended["by_comment"]),
        (&json!("resumed"), &json!("operator"), &json!("autoheal-cli")),
        "no --by and no $USER in the test's environment: {ended}"
    );
    assert!(stdout(&run(url, &["pauses"], Some(OPERATOR_TOKEN)).await).contains("no pause is active"));
    let printed = stdout(
        &run(
            url,
            &["audit", "--kind", "pause_started,pause_ended"],
            Some(OPERATOR_TOKEN),
        )
        .await,
    );
    assert!(
        printed.contains(&format!(
            "pause {id} resumed by operator (shared token) \u{2014} \"autoheal-cli\""
        )),
        "{printed}"
    );
}
