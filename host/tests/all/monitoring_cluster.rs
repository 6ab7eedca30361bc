//! The shipped monitoring for replicas, `monitoring/cluster/`: its
//! Prometheus config and rules pass promtool (the rules' unit tests run
//! with the others, in `rules::`), its Alertmanager config passes amtool and
//! routes as the single host's, both files name the same replicas, each
//! with its token, and a real Prometheus on the cluster config, scraping
//! two real hosts of three, counts two replicas up and holds both cluster
//! alerts pending. A real Alertmanager on the cluster config notifies every
//! replica, with the webhook token.
//!
//! Needs `promtool` and `amtool` (apt-get install prometheus
//! prometheus-alertmanager).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::real::*;
use crate::rules::{
    alert_blocks, autoheal_key, autoheal_metrics, is_exported, is_known, metric_names, monitoring, promtool,
    read, rule_exprs, rules_in,
};
use crate::support::*;

/// The cluster's rule file, and its rules in order: `(group, kind, name)`.
const RULE_FILE: &str = "cluster/rules/autoheal-cluster.rules.yml";
const RULES: &[(&str, &str, &str)] = &[
    (
        "autoheal-cluster.recording",
        "record",
        "autoheal:replicas:expected",
    ),
    ("autoheal-cluster.recording", "record", "autoheal:replicas:up"),
    ("autoheal-cluster.alerts", "alert", "AutohealReplicasDown"),
    (
        "autoheal-cluster.alerts",
        "alert",
        "AutohealReplicaSwitchesDiffer",
    ),
];

/// The replicas and Alertmanagers the shipped cluster files name.
const REPLICAS: [&str; 3] = ["10.0.0.1:9009", "10.0.0.2:9009", "10.0.0.3:9009"];
const ALERTMANAGERS: [&str; 2] = ["10.0.0.11:9093", "10.0.0.12:9093"];
const READ_TOKEN_FILE: &str = "/etc/prometheus/autoheal-read-token";
const WEBHOOK_TOKEN_FILE: &str = "/etc/alertmanager/autoheal-webhook-token";

fn cluster_dir() -> PathBuf {
    monitoring().join("cluster")
}

/// The cluster's prometheus.yml as a test runs it: the token file and the
/// addresses replaced, the rule globs made absolute, 1 s intervals.
fn prometheus_config(token_file: &Path, replicas: [&str; 3], alertmanagers: [&str; 2]) -> String {
    let shipped = read(&cluster_dir().join("prometheus.yml"));
    let mut config = shipped;
    let mut replace = |from: &str, to: &str| {
        assert!(
            config.contains(from),
            "the cluster prometheus.yml no longer has {from:?}"
        );
        config = config.replace(from, to);
    };
    replace(READ_TOKEN_FILE, &token_file.display().to_string());
    replace(
        "  - ../rules/*.yml\n",
        &format!("  - {}\n", monitoring().join("rules/*.yml").display()),
    );
    replace(
        "  - rules/*.yml\n",
        &format!("  - {}\n", cluster_dir().join("rules/*.yml").display()),
    );
    replace("scrape_interval: 15s", "scrape_interval: 1s");
    replace("evaluation_interval: 15s", "evaluation_interval: 1s");
    for (shipped, test) in REPLICAS.iter().zip(replicas) {
        replace(shipped, test);
    }
    for (shipped, test) in ALERTMANAGERS.iter().zip(alertmanagers) {
        replace(shipped, test);
    }
    config
}

#[test]
fn monitoring_cluster_prometheus_yml_passes_promtool_and_loads_both_rule_directories() {
    let run = promtool(["check", "config", "--syntax-only", "cluster/prometheus.yml"]);
    assert!(run.success, "{}", run.report);
    // Everything, the token file and the rule files included, on a copy
    // that reads a token file of the test's.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("autoheal-read-token");
    std::fs::write(&token, "a-read-token-0123456789\n").unwrap();
    let copy = dir.path().join("prometheus.yml");
    std::fs::write(&copy, prometheus_config(&token, REPLICAS, ALERTMANAGERS)).unwrap();
    let run = promtool([OsStr::new("check"), OsStr::new("config"), copy.as_os_str()]);
    assert!(run.success, "promtool check config failed:\n{}", run.report);
    for file in [
        "autoheal.rules.yml",
        "crm.rules.yml",
        "slo_payment_rate.rules.yml",
        "aethervision.rules.yml",
        "autoheal-cluster.rules.yml",
    ] {
        assert!(run.stdout.contains(file), "{file} is not loaded:\n{}", run.report);
    }
    let run = promtool(["check", "rules", RULE_FILE]);
    assert!(run.success, "{}", run.report);
}

#[test]
fn monitoring_cluster_rules_are_exactly_these_with_runbooks_tests_and_known_series() {
    let text = read(&monitoring().join(RULE_FILE));
    let expected: Vec<(String, &str, String)> = RULES
        .iter()
        .map(|(group, kind, name)| (group.to_string(), *kind, name.to_string()))
        .collect();
    assert_eq!(
        rules_in(&text),
        expected,
        "{RULE_FILE} must define exactly these rules, in order"
    );

    let alerts: Vec<&str> = RULES.iter().filter(|r| r.1 == "alert").map(|r| r.2).collect();
    let blocks = alert_blocks(&text);
    assert_eq!(
        blocks.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(),
        alerts
    );
    for (name, block) in &blocks {
        crate::rules::assert_alert_complete(name, block);
    }
    // For people: none opts in to remediation.
    for line in text.lines() {
        assert!(
            autoheal_key(line).is_none(),
            "an `autoheal` annotation in {RULE_FILE}: {line:?}"
        );
    }
    // Only series that exist: autoheal's, the single host's recordings, this file's.
    let recorded: BTreeSet<&str> = RULES.iter().filter(|r| r.1 == "record").map(|r| r.2).collect();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for name in autoheal_metrics(line) {
            assert!(
                is_exported(&name),
                "{RULE_FILE} uses {name}, which autoheal does not export"
            );
        }
    }
    let exprs = rule_exprs(&text);
    assert_eq!(exprs.len(), RULES.len(), "one expr per rule");
    for expr in &exprs {
        for name in metric_names(expr) {
            assert!(
                is_known(&name) || recorded.contains(name.as_str()),
                "{RULE_FILE} reads {name}, which nothing exports or records: {expr:?}"
            );
        }
    }
    // Unit tests, in rules/tests/ with the others (rules:: runs them all).
    let tests = read(&monitoring().join("rules/tests/autoheal-cluster.test.yml"));
    assert!(
        tests
            .lines()
            .any(|l| l.trim() == "- ../../cluster/rules/autoheal-cluster.rules.yml"),
        "rules/tests/autoheal-cluster.test.yml does not test {RULE_FILE}"
    );
    for alert in alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "no unit test of {alert}"
        );
    }
}

fn amtool(args: &[&str]) -> String {
    let output = Command::new("amtool")
        .args(args)
        .current_dir(monitoring())
        .output()
        .expect("amtool is installed (apt-get install prometheus-alertmanager)");
    assert!(
        output.status.success(),
        "amtool {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn monitoring_cluster_alertmanager_yml_passes_amtool_and_notifies_every_replica_with_the_token() {
    amtool(&["check-config", "cluster/alertmanager.yml"]);
    let route = |alertname: &str| {
        amtool(&[
            "config",
            "routes",
            "test",
            "--config.file=cluster/alertmanager.yml",
            &format!("alertname={alertname}"),
        ])
    };
    for alertname in [
        "TcpEndpointDownFast",
        "UptimeProbeFailing",
        "CrmMetricsScrapeStale",
    ] {
        assert_eq!(route(alertname), "autoheal,default", "{alertname}");
    }
    for alertname in [
        "AutohealReplicasDown",
        "AutohealReplicaSwitchesDiffer",
        "AutohealNotRemediating",
    ] {
        assert_eq!(route(alertname), "autoheal-notify", "{alertname}");
    }

    // One webhook per replica, each with the token; the same replicas as
    // Prometheus scrapes.
    let text = read(&cluster_dir().join("alertmanager.yml"));
    let webhooks: Vec<&str> = text.split("      - url: ").skip(1).collect();
    assert_eq!(
        webhooks.len(),
        REPLICAS.len(),
        "one webhook_configs entry per replica"
    );
    for (webhook, replica) in webhooks.iter().zip(REPLICAS) {
        assert!(
            webhook.starts_with(&format!("http://{replica}/alert\n")),
            "{webhook}"
        );
        assert!(webhook.contains("send_resolved: true"), "{webhook}");
        assert!(
            webhook.contains(&format!("credentials_file: {WEBHOOK_TOKEN_FILE}")),
            "{webhook}"
        );
    }
    let prometheus = read(&cluster_dir().join("prometheus.yml"));
    let targets = format!("targets: [{}]", REPLICAS.map(|r| format!("\"{r}\"")).join(", "));
    assert!(prometheus.contains(&targets), "prometheus.yml scrapes {targets}");
    assert!(prometheus.contains(&format!(
        "targets: [{}]",
        ALERTMANAGERS.map(|a| format!("\"{a}\"")).join(", ")
    )));
    // The floor of the cooldowns the comments state is this file's.
    assert!(text.contains("group_interval: 1m") && text.contains("1m + 15s = 75s"));
}

/// A real Alertmanager on the cluster file, its webhooks aimed at two
/// served hosts (and the third at nothing): both get the alert, with the
/// token from the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_cluster_alertmanager_notifies_each_replica_with_the_webhook_token() {
    let hosts = [start_host(false).await, start_host(false).await];
    let tokens = tempfile::tempdir().unwrap();
    let token = tokens.path().join("autoheal-webhook-token");
    std::fs::write(&token, format!("{WEBHOOK_TOKEN}\n")).unwrap();
    let mut config = read(&cluster_dir().join("alertmanager.yml"));
    let nowhere = format!("127.0.0.1:{}", free_port());
    for (replica, url) in REPLICAS.iter().zip([
        hosts[0].url.trim_start_matches("http://"),
        hosts[1].url.trim_start_matches("http://"),
        nowhere.as_str(),
    ]) {
        config = config.replace(&format!("http://{replica}/alert"), &format!("http://{url}/alert"));
    }
    config = config.replace(WEBHOOK_TOKEN_FILE, &token.display().to_string());
    let am = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alertmanager.yml");
        std::fs::write(&path, config).unwrap();
        Alertmanager::serve(&path, dir)
    })
    .await
    .unwrap();
    am.push(
        json!({ "alertname": "TcpEndpointDownFast", "service": "crm-api" }),
        json!({ "autoheal": "true" }),
        None,
    );
    for host in &hosts {
        let received = host
            .wait_for("webhook_received", 1, Duration::from_secs(45))
            .await;
        assert_eq!(received[0]["receiver"], "autoheal", "{received:?}");
        assert!(host.audit("auth_failed").await.is_empty(), "the token was sent");
    }
}

async fn start_host(enabled: bool) -> ServedHost {
    ServedHost::start(
        &[("crm.toml", bundled_manifest())],
        Arc::new(autoheal_containers::NoEngine),
        move |c| c.enabled = enabled,
    )
    .await
}

/// A real Prometheus on the cluster config scrapes two hosts of the three
/// replicas it names, one with the kill switch on: 2 replicas up, both
/// cluster alerts pending, every rule of both directories loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_cluster_prometheus_counts_the_replicas_up_and_sees_their_switches_differ() {
    let hosts = [start_host(true).await, start_host(false).await];
    let addresses: Vec<String> = hosts
        .iter()
        .map(|h| h.url.trim_start_matches("http://").to_owned())
        .collect();
    let values = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("autoheal-read-token");
        std::fs::write(&token, "a-read-token-no-host-asks-for\n").unwrap();
        // The third replica and both Alertmanagers: ports where nothing listens.
        let (down, am1, am2) = (
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
        );
        let config = prometheus_config(
            &token,
            [addresses[0].as_str(), addresses[1].as_str(), down.as_str()],
            [am1.as_str(), am2.as_str()],
        );
        let port = free_port();
        let prometheus = prometheus_daemon(&config, port, dir);
        let url = prometheus.url.clone();
        let (_, rules) = http(&url, "GET", "/api/v1/rules", "").unwrap();
        let loaded = rules["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["rules"].as_array().unwrap().len())
            .sum::<usize>();
        let pending = |alertname: &str| {
            prometheus_query(
                &url,
                &format!("ALERTS{{alertname=\"{alertname}\",alertstate=\"pending\"}}"),
            )
        };
        wait_until(
            "both cluster alerts pending, with two replicas up",
            Duration::from_secs(60),
            || {
                let up = prometheus_query(&url, "autoheal:replicas:up")?;
                (up == 2.0).then_some(())?;
                pending("AutohealReplicasDown")?;
                pending("AutohealReplicaSwitchesDiffer")?;
                Some(())
            },
        );
        let values = (
            loaded,
            prometheus_query(&url, "count(up{job=\"autoheal\"})"),
            prometheus_query(&url, "autoheal:replicas:expected"),
            prometheus_query(&url, "count(autoheal_enabled{job=\"autoheal\"} == 0)"),
            prometheus_query(&url, "count(up{job=\"alertmanager\"})"),
        );
        drop(prometheus);
        values
    })
    .await
    .unwrap();
    let (loaded, targets, expected, off, alertmanagers) = values;
    assert_eq!(
        loaded,
        40 + RULES.len(),
        "the single host's 40 rules (as scrape:: counts them) and the cluster's"
    );
    assert_eq!(targets, Some(3.0), "every replica is a target");
    assert_eq!(expected, Some(3.0));
    assert_eq!(
        off,
        Some(1.0),
        "one replica of the two up has the kill switch off"
    );
    assert_eq!(alertmanagers, Some(2.0), "both Alertmanagers are scraped");
    drop(hosts);
}
