//! The shipped monitoring files: the Prometheus configuration, the rules
//! about autoheal and their unit tests pass promtool, and the rules and the
//! Grafana dashboard name only series the host exports.
//!
//! Needs `promtool` (apt-get install prometheus).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Every series the host exports on GET /metrics. The names and labels come
/// from the original system, so dashboards and rules may use only these.
const SERIES: &[&str] = &[
    "autoheal_enabled",
    "autoheal_actions_total",
    "autoheal_action_last_timestamp",
    "autoheal_cooldown_remaining_seconds",
    "autoheal_event_total",
    "autoheal_action_failures_total",
    "autoheal_last_event_timestamp",
    "autoheal_last_action_epoch",
    "autoheal_plugins_loaded",
    "autoheal_plugin_rejections_total",
    "autoheal_plugin_invocations_total",
    "autoheal_plugin_invocation_duration_seconds",
    "autoheal_capability_calls_total",
    "autoheal_webhook_requests_total",
    "autoheal_sse_subscribers",
];

/// The histograms among [`SERIES`]: they are queried as `_bucket`, `_sum`
/// and `_count`.
const HISTOGRAMS: &[&str] = &["autoheal_plugin_invocation_duration_seconds"];

const RECORDING_GROUP: &str = "autoheal.recording";
const RECORDING_RULES: [&str; 4] = [
    "autoheal:cooldown_active",
    "autoheal:actions:rate_5m",
    "autoheal:heartbeat:age_seconds",
    "autoheal:action_fail_rate_15m",
];

const ALERT_GROUP: &str = "autoheal.alerts";
const ALERTS: [&str; 4] = [
    "AutohealNoEvents15m",
    "AutohealActionFailureSpike",
    "AutohealDisabledInDev",
    "AutohealStaleActions",
];

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring")
}

/// The `*.yml` files directly in `dir` (what a `dir/*.yml` glob matches),
/// sorted.
fn yml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file() && path.extension() == Some(OsStr::new("yml")))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.yml file in {}", dir.display());
    files
}

/// What a promtool run printed.
struct Run {
    success: bool,
    stdout: String,
    /// The command, its exit status, stdout and stderr: for assertion messages.
    report: String,
}

/// Runs promtool in `monitoring/`, failing the test if it cannot be started.
fn promtool<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new("promtool");
    command.args(args).current_dir(monitoring());
    let output = match command.output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("promtool is not installed; install it with `apt-get install prometheus` ({e})")
        }
        Err(e) => panic!("cannot run {command:?}: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = format!(
        "{command:?} exited with {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    Run {
        success: output.status.success(),
        stdout,
        report,
    }
}

#[test]
fn promtool_check_rules_accepts_every_rule_file() {
    let rules = monitoring().join("rules");
    // prometheus.yml loads `rules/*.yml`: a `.yaml` file would be left out.
    for entry in std::fs::read_dir(&rules).unwrap() {
        let path = entry.unwrap().path();
        assert!(
            path.extension() != Some(OsStr::new("yaml")),
            "{} is not loaded by prometheus.yml (rule_files: rules/*.yml); name it .yml",
            path.display()
        );
    }
    let files = yml_files(&rules);
    let mut args = vec![OsStr::new("check").to_owned(), OsStr::new("rules").to_owned()];
    args.extend(files.iter().map(|f| f.as_os_str().to_owned()));
    let run = promtool(&args);
    assert!(run.success, "promtool check rules failed:\n{}", run.report);
}

#[test]
fn promtool_check_config_accepts_prometheus_yml_and_loads_the_rules() {
    let run = promtool(["check", "config", "prometheus.yml"]);
    assert!(run.success, "promtool check config failed:\n{}", run.report);
    // The rule_files glob must find the rules (promtool checks each file it
    // finds, and says so).
    assert!(
        run.stdout.contains("autoheal.rules.yml"),
        "prometheus.yml does not load rules/autoheal.rules.yml:\n{}",
        run.report
    );
}

#[test]
fn promtool_rule_unit_tests_pass() {
    let files = yml_files(&monitoring().join("rules/tests"));
    let mut args = vec![OsStr::new("test").to_owned(), OsStr::new("rules").to_owned()];
    args.extend(files.iter().map(|f| f.as_os_str().to_owned()));
    let run = promtool(&args);
    assert!(run.success, "promtool test rules failed:\n{}", run.report);
    assert!(
        run.stdout.contains("SUCCESS") && !run.stdout.contains("FAILED"),
        "promtool test rules did not report the tests as passed:\n{}",
        run.report
    );
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy();
        assert!(
            run.stdout.contains(&*name),
            "promtool test rules did not test {name}:\n{}",
            run.report
        );
    }
}

/// One rule of a rule file, as `(group, "record" | "alert", name)`.
type Rule = (String, &'static str, String);

/// The rules of a Prometheus rule file, by a line scan: `- name:` starts a
/// group (no rule has a `name` key), `record:` and `alert:` name a rule.
/// Enough for the files here, which no YAML parser among our dependencies
/// reads; promtool checks the real structure.
fn rules_in(text: &str) -> Vec<Rule> {
    let mut group = String::new();
    let mut rules = Vec::new();
    for line in text.lines() {
        let item = line.trim_start();
        let item = item.strip_prefix("- ").unwrap_or(item).trim_start();
        let value = |rest: &str| rest.trim().trim_matches('"').trim_matches('\'').to_owned();
        if let Some(rest) = item.strip_prefix("name:") {
            group = value(rest);
        } else if let Some(rest) = item.strip_prefix("record:") {
            rules.push((group.clone(), "record", value(rest)));
        } else if let Some(rest) = item.strip_prefix("alert:") {
            rules.push((group.clone(), "alert", value(rest)));
        }
    }
    rules
}

fn rules_text() -> String {
    let path = monitoring().join("rules/autoheal.rules.yml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn the_rules_file_defines_exactly_the_four_recording_rules_and_four_alerts() {
    let rules = rules_in(&rules_text());
    let expected: BTreeSet<Rule> = RECORDING_RULES
        .iter()
        .map(|name| (RECORDING_GROUP.to_owned(), "record", name.to_string()))
        .chain(
            ALERTS
                .iter()
                .map(|name| (ALERT_GROUP.to_owned(), "alert", name.to_string())),
        )
        .collect();
    let found: BTreeSet<Rule> = rules.iter().cloned().collect();
    assert_eq!(found.len(), rules.len(), "a rule is defined twice: {rules:#?}");
    assert_eq!(
        found, expected,
        "monitoring/rules/autoheal.rules.yml must define exactly these rules, in these groups"
    );
}

#[test]
fn every_alert_has_for_severity_and_the_three_annotations_and_no_opt_in() {
    let text = rules_text();
    for line in text.lines() {
        let key = line.trim_start().trim_start_matches("- ");
        // `autoheal: "true"` would opt the alert into remediation by autoheal
        // itself; recording rule names (`autoheal:heartbeat:...`) in
        // expressions are fine.
        let opt_in = key
            .strip_prefix("autoheal:")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace));
        assert!(
            !opt_in,
            "alerts about autoheal must not carry an `autoheal` annotation: {line:?}"
        );
    }
    let mut blocks = text.split("- alert:").skip(1);
    for name in ALERTS {
        let block = blocks
            .find(|block| block.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no alert {name} (in this order: {ALERTS:?})"));
        for key in [
            "expr:",
            "for:",
            "severity:",
            "summary:",
            "description:",
            "runbook:",
        ] {
            assert!(block.contains(key), "alert {name} has no {key}");
        }
        assert!(
            block.contains("$value"),
            "the description of {name} does not show the value ({{{{ $value }}}})"
        );
    }
}

/// The `expr` of every target of every panel, rows' panels included.
fn panel_exprs(panels: &Value, exprs: &mut Vec<String>) {
    for panel in panels.as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                exprs.push(expr.to_owned());
            }
        }
        panel_exprs(&panel["panels"], exprs);
    }
}

/// The metric names in a PromQL expression that start with `autoheal_`:
/// identifiers (letters, digits, `_`, `:`) not preceded by one.
fn autoheal_metrics(expr: &str) -> Vec<String> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find(is_ident) {
        let tail = &rest[start..];
        let end = tail.find(|c: char| !is_ident(c)).unwrap_or(tail.len());
        let word = &tail[..end];
        if word.starts_with("autoheal_") {
            names.push(word.to_owned());
        }
        rest = &tail[end..];
    }
    names
}

fn is_exported(name: &str) -> bool {
    SERIES.contains(&name)
        || HISTOGRAMS.iter().any(|histogram| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| name.strip_prefix(histogram) == Some(*suffix))
        })
}

#[test]
fn the_metric_name_scan_finds_names_and_only_names() {
    assert_eq!(
        autoheal_metrics(
            "histogram_quantile(0.95, sum by (le) (rate(autoheal_x_bucket{job=\"autoheal\"}[5m]))) \
             or autoheal:heartbeat:age_seconds - autoheal_y"
        ),
        ["autoheal_x_bucket", "autoheal_y"]
    );
    assert!(is_exported("autoheal_plugin_invocation_duration_seconds_bucket"));
    assert!(!is_exported("autoheal_enabled_bucket"));
    assert!(!is_exported("autoheal_actions"));
}

#[test]
fn the_grafana_dashboard_uses_only_exported_series() {
    let path = monitoring().join("grafana/autoheal.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let dashboard: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
    assert_eq!(dashboard["uid"], "autoheal");
    assert_eq!(dashboard["title"], "Autoheal");

    // The datasource is chosen at import (or provisioning) through the
    // DS_PROMETHEUS variable, never a uid of some particular Grafana.
    let variables = dashboard["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let inputs = dashboard["__inputs"].as_array().cloned().unwrap_or_default();
    assert!(
        variables
            .iter()
            .chain(&inputs)
            .any(|v| v["name"] == "DS_PROMETHEUS"),
        "the dashboard defines no DS_PROMETHEUS datasource variable or input"
    );
    for panel in dashboard["panels"].as_array().expect("the dashboard has panels") {
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${DS_PROMETHEUS}",
                "panel {:?} does not use ${{DS_PROMETHEUS}}",
                panel["title"]
            );
        }
    }

    let mut exprs = Vec::new();
    panel_exprs(&dashboard["panels"], &mut exprs);
    assert!(!exprs.is_empty(), "no panel has a query");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        for name in autoheal_metrics(expr) {
            assert!(
                is_exported(&name),
                "the dashboard queries {name}, which autoheal does not export, in {expr:?}; \
                 the exported series are {SERIES:?}"
            );
            used.insert(name);
        }
    }
    // The panels the dashboard is for.
    for name in [
        "autoheal_last_event_timestamp",
        "autoheal_actions_total",
        "autoheal_action_failures_total",
        "autoheal_cooldown_remaining_seconds",
        "autoheal_enabled",
        "autoheal_plugin_invocations_total",
        "autoheal_plugin_invocation_duration_seconds_bucket",
        "autoheal_capability_calls_total",
    ] {
        assert!(used.contains(name), "no panel shows {name}");
    }
}

#[test]
fn the_rules_use_only_exported_series() {
    for expr_line in rules_text()
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
    {
        for name in autoheal_metrics(expr_line) {
            assert!(
                is_exported(&name),
                "monitoring/rules/autoheal.rules.yml uses {name}, which autoheal does not export: {expr_line:?}"
            );
        }
    }
}
