//! The shipped monitoring files: the Prometheus configuration, the rule
//! files (autoheal's health, the payment SLO runway, the AetherVision view,
//! the crm-api alerts autoheal remediates) and their unit tests pass
//! promtool; each rule file defines exactly its rules; only the crm-api
//! alerts opt in to remediation; and the rules and the Grafana dashboards
//! name only series that exist (exported by the host, recorded by the rules,
//! or the few others they read).
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
    "autoheal_dry_run",
    "autoheal_actions_total",
    "autoheal_action_last_timestamp",
    "autoheal_cooldown_remaining_seconds",
    "autoheal_event_total",
    "autoheal_action_failures_total",
    "autoheal_last_event_timestamp",
    "autoheal_heartbeat_timestamp_seconds",
    "autoheal_last_action_epoch",
    "autoheal_plugins_loaded",
    "autoheal_plugin_rejections_total",
    "autoheal_plugin_invocations_total",
    "autoheal_plugin_invocation_duration_seconds",
    "autoheal_capability_calls_total",
    "autoheal_webhook_requests_total",
    "autoheal_auth_failures_total",
    "autoheal_sse_subscribers",
    "autoheal_remediations_total",
    "autoheal_time_to_recover_seconds",
    "autoheal_cluster_available",
    "autoheal_actions_queued",
    "autoheal_action_queue_wait_seconds",
    "autoheal_paused",
    "autoheal_deferred_alerts",
    "autoheal_repeat_cap_skips_total",
    "autoheal_audit_bytes",
    "autoheal_audit_filesystem_free_bytes",
];

/// The histograms among [`SERIES`]: they are queried as `_bucket`, `_sum`
/// and `_count`.
const HISTOGRAMS: &[&str] = &[
    "autoheal_plugin_invocation_duration_seconds",
    "autoheal_time_to_recover_seconds",
    "autoheal_action_queue_wait_seconds",
];

/// Series other than autoheal's that the rules and dashboards may read: the
/// CRM's payment counters (the payment SLO's SLI), the blackbox exporter's
/// probe results, Prometheus' own target health and firing alerts.
const OTHER_SERIES: &[&str] = &["crm_payments_total", "probe_success", "up", "ALERTS"];

/// One group of a rule file: its recording rules and alerts, in order.
struct Group {
    name: &'static str,
    records: &'static [&'static str],
    alerts: &'static [&'static str],
}

/// A rule file in monitoring/rules/ and what it must define.
struct RuleFile {
    file: &'static str,
    groups: &'static [Group],
    /// Its alerts opt in to remediation (`autoheal: "true"`): all of them,
    /// or none.
    remediable: bool,
}

/// Every rule file prometheus.yml loads (rules/*.yml), with its groups and
/// rules in order.
const RULE_FILES: &[RuleFile] = &[
    RuleFile {
        file: "autoheal.rules.yml",
        remediable: false,
        groups: &[
            Group {
                name: "autoheal.recording",
                records: &[
                    "autoheal:cooldown_active",
                    "autoheal:actions:rate_5m",
                    "autoheal:heartbeat:age_seconds",
                    "autoheal:action_fail_rate_15m",
                    "plugin:autoheal_remediations:success_ratio_1h",
                    "autoheal:remediations:success_ratio_1h",
                ],
                alerts: &[],
            },
            Group {
                name: "autoheal.alerts",
                records: &[],
                alerts: &[
                    "AutohealNoEvents15m",
                    "AutohealWebhookUnauthorized",
                    "AutohealActionFailureSpike",
                    "AutohealFixesNotWorking",
                    "AutohealClusterUnavailable",
                    "AutohealQueueBacklog",
                    "AutohealAuditDiskFilling",
                ],
            },
        ],
    },
    RuleFile {
        file: "slo_payment_rate.rules.yml",
        remediable: false,
        groups: &[
            Group {
                name: "slo_payment_rate.recording",
                records: &[
                    "slo:payment_rate:objective",
                    "slo:payment_rate:error_ratio_1h",
                    "slo:payment_rate:error_ratio_6h",
                    "slo:payment_rate:error_ratio_30d",
                    "slo:payment_rate:burn_rate_1h",
                    "slo:payment_rate:burn_rate_6h",
                    "slo:payment_rate:error_budget_remaining",
                ],
                alerts: &[],
            },
            Group {
                name: "slo_payment_rate.predict.recording",
                records: &[
                    "slo:payment_rate:hours_to_breach_1h",
                    "slo:payment_rate:hours_to_breach_6h",
                    "slo:payment_rate:hours_to_breach",
                    "slo:payment_rate:days_to_breach",
                ],
                alerts: &[],
            },
            Group {
                name: "slo_payment_rate.alerts",
                records: &[],
                alerts: &[
                    "PaymentRatePredictedBreachSoon",
                    "PaymentRatePredictedBreachCritical",
                ],
            },
        ],
    },
    RuleFile {
        file: "aethervision.rules.yml",
        remediable: false,
        groups: &[
            Group {
                name: "aethervision.recording",
                records: &[
                    "aethervision:alerts:count",
                    "aethervision:alerts_critical:count",
                    "aethervision:alerts_warning:count",
                    "aethervision:probes_http_up",
                    "aethervision:probes_tcp_up",
                    "aethervision:days_to_breach",
                    "aethervision:autoheal_enabled",
                    "aethervision:autoheal_last_action_age",
                ],
                alerts: &[],
            },
            Group {
                name: "aethervision.alerts",
                records: &[],
                alerts: &[
                    "ProbesCoverageLow",
                    "AutohealDisabledInDev",
                    "AutohealStaleActions",
                ],
            },
        ],
    },
    RuleFile {
        file: "crm.rules.yml",
        remediable: true,
        groups: &[Group {
            name: "crm.alerts",
            records: &[],
            alerts: &[
                "TcpEndpointDownFast",
                "UptimeProbeFailing",
                "CrmMetricsScrapeStale",
            ],
        }],
    },
];

/// Recording and alerting rules in all of [`RULE_FILES`]; Prometheus loads
/// all of them (host/tests/all/scrape.rs counts them in a real one).
const RECORDING_RULES_TOTAL: usize = 25;
const ALERTS_TOTAL: usize = 15;

pub(crate) fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring")
}

/// The `*.yml` files directly in `dir` (what a `dir/*.yml` glob matches),
/// sorted.
pub(crate) fn yml_files(dir: &Path) -> Vec<PathBuf> {
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
pub(crate) struct Run {
    pub(crate) success: bool,
    pub(crate) stdout: String,
    /// The command, its exit status, stdout and stderr: for assertion messages.
    pub(crate) report: String,
}

/// Runs promtool in `monitoring/`, failing the test if it cannot be started.
pub(crate) fn promtool<I, S>(args: I) -> Run
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

/// Where the shipped prometheus.yml reads the read token autoheal's scrape sends.
const READ_TOKEN_FILE: &str = "/etc/prometheus/autoheal-read-token";

#[test]
fn promtool_check_config_accepts_prometheus_yml_and_loads_the_rules() {
    // The syntax alone, of the file as shipped.
    let run = promtool(["check", "config", "--syntax-only", "prometheus.yml"]);
    assert!(
        run.success,
        "promtool check config --syntax-only failed:\n{}",
        run.report
    );
    // Everything, which includes that the token file exists: on a copy that
    // reads a token file of the test's (not this machine's /etc) and the
    // rules where they are.
    let shipped = read(&monitoring().join("prometheus.yml"));
    assert!(
        shipped.contains(&format!("credentials_file: {READ_TOKEN_FILE}")),
        "prometheus.yml no longer scrapes autoheal with the read token from {READ_TOKEN_FILE}"
    );
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("autoheal-read-token");
    std::fs::write(&token, "a-read-token-0123456789\n").unwrap();
    let copy = dir.path().join("prometheus.yml");
    std::fs::write(
        &copy,
        shipped
            .replace(READ_TOKEN_FILE, &token.display().to_string())
            .replace(
                "rules/*.yml",
                &monitoring().join("rules/*.yml").display().to_string(),
            ),
    )
    .unwrap();
    let run = promtool([OsStr::new("check"), OsStr::new("config"), copy.as_os_str()]);
    assert!(run.success, "promtool check config failed:\n{}", run.report);
    // The rule_files glob must find the rules (promtool checks each file it
    // finds, and says so).
    for rule_file in RULE_FILES {
        assert!(
            run.stdout.contains(rule_file.file),
            "prometheus.yml does not load rules/{}:\n{}",
            rule_file.file,
            run.report
        );
    }
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

#[test]
fn every_rule_file_has_unit_tests() {
    for rule_file in RULE_FILES {
        let stem = rule_file.file.trim_end_matches(".rules.yml");
        let path = monitoring().join(format!("rules/tests/{stem}.test.yml"));
        let text = read(&path);
        assert!(
            text.lines()
                .any(|line| line.trim() == format!("- ../{}", rule_file.file)),
            "{} does not list ../{} in rule_files",
            path.display(),
            rule_file.file
        );
    }
}

/// One rule of a rule file, as `(group, "record" | "alert", name)`.
pub(crate) type Rule = (String, &'static str, String);

/// The rules of a Prometheus rule file, by a line scan: `- name:` starts a
/// group (no rule has a `name` key), `record:` and `alert:` name a rule.
/// Enough for the files here, which no YAML parser among our dependencies
/// reads; promtool checks the real structure.
pub(crate) fn rules_in(text: &str) -> Vec<Rule> {
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

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn rules_text(file: &str) -> String {
    read(&monitoring().join("rules").join(file))
}

/// The expected rules of a file, in order.
fn expected_rules(rule_file: &RuleFile) -> Vec<Rule> {
    let mut rules = Vec::new();
    for group in rule_file.groups {
        for name in group.records {
            rules.push((group.name.to_owned(), "record", name.to_string()));
        }
        for name in group.alerts {
            rules.push((group.name.to_owned(), "alert", name.to_string()));
        }
    }
    rules
}

fn recorded_names() -> BTreeSet<&'static str> {
    RULE_FILES
        .iter()
        .flat_map(|f| f.groups)
        .flat_map(|g| g.records.iter().copied())
        .collect()
}

#[test]
fn the_rule_files_are_exactly_the_listed_ones() {
    let found: BTreeSet<String> = yml_files(&monitoring().join("rules"))
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = RULE_FILES.iter().map(|f| f.file.to_owned()).collect();
    assert_eq!(
        found, expected,
        "monitoring/rules/*.yml (all loaded by prometheus.yml) must be the files this test knows"
    );
    let (records, alerts): (Vec<Rule>, Vec<Rule>) = RULE_FILES
        .iter()
        .flat_map(expected_rules)
        .partition(|(_, kind, _)| *kind == "record");
    assert_eq!(records.len(), RECORDING_RULES_TOTAL);
    assert_eq!(alerts.len(), ALERTS_TOTAL);
}

#[test]
fn every_rule_file_defines_exactly_its_groups_and_rules_in_order() {
    let mut all = BTreeSet::new();
    for rule_file in RULE_FILES {
        let rules = rules_in(&rules_text(rule_file.file));
        assert_eq!(
            rules,
            expected_rules(rule_file),
            "monitoring/rules/{} must define exactly these rules, in these groups, in this order",
            rule_file.file
        );
        for (_, _, name) in rules {
            assert!(all.insert(name.clone()), "{name} is defined twice");
        }
    }
}

/// The text of each alert of a rule file, from its `- alert:` line up to the
/// next alert or group.
pub(crate) fn alert_blocks(text: &str) -> Vec<(String, String)> {
    text.split("- alert:")
        .skip(1)
        .map(|block| {
            let block = block.split("- name:").next().unwrap();
            let name = block.lines().next().unwrap().trim().to_owned();
            (name, block.to_owned())
        })
        .collect()
}

/// Whether a line is an `autoheal:` key (the opt-in annotation), and not
/// a recording rule name such as `autoheal:heartbeat:age_seconds`.
pub(crate) fn autoheal_key(line: &str) -> Option<&str> {
    let key = line.trim_start().trim_start_matches("- ");
    key.strip_prefix("autoheal:")
        .filter(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
        .map(str::trim)
}

#[test]
fn every_alert_has_for_severity_the_three_annotations_and_shows_its_value() {
    for rule_file in RULE_FILES {
        let text = rules_text(rule_file.file);
        let blocks = alert_blocks(&text);
        let names: Vec<&str> = blocks.iter().map(|(name, _)| name.as_str()).collect();
        let expected: Vec<&str> = rule_file
            .groups
            .iter()
            .flat_map(|g| g.alerts.iter().copied())
            .collect();
        assert_eq!(names, expected, "the alerts of {}", rule_file.file);
        for (name, block) in &blocks {
            assert_alert_complete(name, block);
        }
    }
}

#[test]
fn only_the_crm_alerts_opt_in_to_remediation_and_all_of_them_do() {
    for rule_file in RULE_FILES {
        let text = rules_text(rule_file.file);
        if !rule_file.remediable {
            // `autoheal: "true"` would opt an alert into remediation by
            // autoheal; alerts about autoheal itself, the SLO and the view
            // are for people.
            for line in text.lines() {
                assert!(
                    autoheal_key(line).is_none(),
                    "{}: only crm.rules.yml's alerts may carry an `autoheal` annotation: {line:?}",
                    rule_file.file
                );
            }
            continue;
        }
        for (name, block) in alert_blocks(&text) {
            let values: Vec<&str> = block.lines().filter_map(autoheal_key).collect();
            assert_eq!(
                values,
                ["\"true\""],
                "{}: alert {name} must carry exactly one annotation autoheal: \"true\"",
                rule_file.file
            );
        }
    }
}

#[test]
fn the_remediable_alerts_are_the_ones_the_bundled_plugin_handles_and_alertmanager_routes() {
    let remediable: BTreeSet<&str> = RULE_FILES
        .iter()
        .filter(|f| f.remediable)
        .flat_map(|f| f.groups)
        .flat_map(|g| g.alerts.iter().copied())
        .collect();
    let path = monitoring().join("../plugins/restart-container/restart-crm-api.toml");
    let manifest: toml::Table =
        toml::from_str(&read(&path)).unwrap_or_else(|e| panic!("{} is not valid TOML: {e}", path.display()));
    let handled: BTreeSet<&str> = manifest["match"]["alertnames"]
        .as_array()
        .expect("[match] alertnames")
        .iter()
        .map(|name| name.as_str().unwrap())
        .collect();
    assert_eq!(
        remediable, handled,
        "crm.rules.yml's alerts must be exactly the ones restart-crm-api.toml handles"
    );
    // Alertmanager routes them to autoheal's webhook: they appear in the
    // autoheal route's alertname regex.
    let alertmanager = read(&monitoring().join("alertmanager.yml"));
    let route = alertmanager
        .lines()
        .find(|line| line.contains("alertname=~") && line.contains("TcpEndpointDownFast"))
        .expect("alertmanager.yml has a route for the remediable alerts");
    for name in &remediable {
        assert!(
            route.contains(name),
            "alertmanager.yml does not route {name} to autoheal: {route}"
        );
    }
}

/// The PromQL expressions of a rule file: each `expr:`, on its line or as
/// the indented block below `expr: |`.
pub(crate) fn rule_exprs(text: &str) -> Vec<String> {
    let mut exprs = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if !rest.starts_with('|') && !rest.starts_with('>') {
            exprs.push(rest.trim_matches('"').trim_matches('\'').to_owned());
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let mut block = String::new();
        while let Some(next) =
            lines.next_if(|next| next.trim().is_empty() || next.len() - next.trim_start().len() > indent)
        {
            block.push_str(next);
            block.push('\n');
        }
        exprs.push(block);
    }
    exprs
}

/// The expr of every target of every panel, rows' panels included.
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
pub(crate) fn autoheal_metrics(expr: &str) -> Vec<String> {
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

/// Every metric name a PromQL expression selects, by a small scan: an
/// identifier is a metric name unless it is a function or aggregation
/// (followed by `(`, or by `by`/`without` and its label list), a keyword, a label name (inside `{}`, or in the list
/// after by, without, on, ignoring, group_left, group_right), inside a
/// string or a `[]` range, a number or duration, or a Grafana `$variable`.
pub(crate) fn metric_names(expr: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "inf", "nan"];
    const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
    let chars: Vec<char> = expr.chars().collect();
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let next_non_space = |from: usize| {
        chars[from..]
            .iter()
            .position(|c| !c.is_whitespace())
            .map(|i| from + i)
    };
    // Index just past the `)` matching the `(` at `open`.
    let past_parens = |open: usize| {
        let mut depth = 0;
        for (i, c) in chars.iter().enumerate().skip(open) {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        }
        chars.len()
    };
    let mut names = Vec::new();
    let (mut braces, mut brackets) = (0, 0);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' && c != '`' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if !is_ident(c) {
            match c {
                '{' => braces += 1,
                '}' => braces -= 1,
                '[' => brackets += 1,
                ']' => brackets -= 1,
                _ => {}
            }
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (is_ident(chars[i]) || (chars[start].is_ascii_digit() && chars[i] == '.')) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let variable = start > 0 && chars[start - 1] == '$';
        let number = c.is_ascii_digit();
        let label_list = LABEL_LISTS.contains(&word.as_str());
        let next = next_non_space(i);
        let call = next.is_some_and(|j| chars[j] == '(');
        // `sum by (x) (...)`: an aggregation whose grouping comes first.
        let grouped = next.is_some_and(|j| {
            let word: String = chars[j..].iter().take_while(|c| is_ident(**c)).collect();
            word == "by" || word == "without"
        });
        if label_list {
            if call {
                i = past_parens(next_non_space(i).unwrap());
            }
        } else if !(variable
            || number
            || call
            || grouped
            || braces > 0
            || brackets > 0
            || KEYWORDS.contains(&word.to_ascii_lowercase().as_str()))
        {
            names.push(word);
        }
    }
    names
}

pub(crate) fn is_exported(name: &str) -> bool {
    SERIES.contains(&name)
        || HISTOGRAMS.iter().any(|histogram| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| name.strip_prefix(histogram) == Some(*suffix))
        })
}

/// A series the rules and dashboards may read: exported by autoheal,
/// recorded by the rules, or one of [`OTHER_SERIES`].
pub(crate) fn is_known(name: &str) -> bool {
    is_exported(name) || OTHER_SERIES.contains(&name) || recorded_names().contains(name)
}

#[test]
fn the_metric_name_scans_find_names_and_only_names() {
    assert_eq!(
        autoheal_metrics(
            "histogram_quantile(0.95, sum by (le) (rate(autoheal_x_bucket{job=\"autoheal\"}[5m]))) \
             or autoheal:heartbeat:age_seconds - autoheal_y"
        ),
        ["autoheal_x_bucket", "autoheal_y"]
    );
    assert_eq!(
        metric_names(
            "histogram_quantile(0.95, sum by (le) (rate(autoheal_x_bucket{job=\"autoheal\"}[5m]))) \
             or on() group_left autoheal:heartbeat:age_seconds - autoheal_y offset 24h"
        ),
        [
            "autoheal_x_bucket",
            "autoheal:heartbeat:age_seconds",
            "autoheal_y"
        ]
    );
    assert_eq!(
        metric_names("count(ALERTS{alertstate=\"firing\", severity=\"critical\"}) or vector(0)"),
        ["ALERTS"]
    );
    assert_eq!(
        metric_names(
            "min(label_replace(a:b, \"window\", \"1h\", \"\", \"\") or c) > bool 1e3 and on (x) d * 0.5 \
             unless sum without (instance) (rate(e[$__rate_interval])) < Inf"
        ),
        ["a:b", "c", "d", "e"]
    );
    assert!(metric_names("time() - 1.5e-3 * vector(0)").is_empty());
    assert!(is_exported("autoheal_plugin_invocation_duration_seconds_bucket"));
    assert!(!is_exported("autoheal_enabled_bucket"));
    assert!(!is_exported("autoheal_actions"));
    assert!(is_known("slo:payment_rate:days_to_breach"));
    assert!(is_known("crm_payments_total"));
    assert!(!is_known("slo:payment_rate:days_to_breach_1h"));
}

#[test]
fn the_rules_use_only_exported_and_known_series() {
    for rule_file in RULE_FILES {
        let text = rules_text(rule_file.file);
        // Anywhere outside comments (runbooks name series too).
        for line in text.lines().filter(|line| !line.trim_start().starts_with('#')) {
            for name in autoheal_metrics(line) {
                assert!(
                    is_exported(&name),
                    "monitoring/rules/{} uses {name}, which autoheal does not export: {line:?}",
                    rule_file.file
                );
            }
        }
        let exprs = rule_exprs(&text);
        assert_eq!(
            exprs.len(),
            expected_rules(rule_file).len(),
            "{}: one expr per rule",
            rule_file.file
        );
        for expr in &exprs {
            let names = metric_names(expr);
            assert!(
                !names.is_empty() || expr.contains("vector("),
                "no series in {expr:?}"
            );
            for name in names {
                assert!(
                    is_known(&name),
                    "monitoring/rules/{} reads {name}, which is neither exported by autoheal, \
                     recorded by the rules, nor one of {OTHER_SERIES:?}: {expr:?}",
                    rule_file.file
                );
            }
        }
    }
}

/// A dashboard of monitoring/grafana/, checked for what every dashboard
/// here must do: its uid and title, the DS_PROMETHEUS datasource, and only
/// series that exist. Returns it and the autoheal series it queries.
fn dashboard(file: &str, uid: &str, title: &str) -> (Value, BTreeSet<String>) {
    let path = monitoring().join("grafana").join(file);
    let dashboard: Value = serde_json::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
    assert_eq!(dashboard["uid"], uid);
    assert_eq!(dashboard["title"], title);

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
        "{file} defines no DS_PROMETHEUS datasource variable or input"
    );
    for panel in dashboard["panels"].as_array().expect("the dashboard has panels") {
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${DS_PROMETHEUS}",
                "{file}: panel {:?} does not use ${{DS_PROMETHEUS}}",
                panel["title"]
            );
        }
    }

    let mut exprs = Vec::new();
    panel_exprs(&dashboard["panels"], &mut exprs);
    assert!(!exprs.is_empty(), "{file}: no panel has a query");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        for name in autoheal_metrics(expr) {
            assert!(
                is_exported(&name),
                "{file} queries {name}, which autoheal does not export, in {expr:?}; \
                 the exported series are {SERIES:?}"
            );
            used.insert(name);
        }
        for name in metric_names(expr) {
            assert!(
                is_known(&name),
                "{file} queries {name}, which is neither exported by autoheal, recorded by the \
                 rules, nor one of {OTHER_SERIES:?}, in {expr:?}"
            );
        }
    }
    (dashboard, used)
}

#[test]
fn the_autoheal_dashboard_uses_only_exported_series() {
    let (_, used) = dashboard("autoheal.json", "autoheal", "Autoheal");
    // The panels the dashboard is for.
    for name in [
        "autoheal_heartbeat_timestamp_seconds",
        "autoheal_actions_total",
        "autoheal_action_failures_total",
        "autoheal_cooldown_remaining_seconds",
        "autoheal_enabled",
        "autoheal_plugin_invocations_total",
        "autoheal_plugin_invocation_duration_seconds_bucket",
        "autoheal_capability_calls_total",
        "autoheal_remediations_total",
        "autoheal_time_to_recover_seconds_bucket",
        "autoheal_repeat_cap_skips_total",
    ] {
        assert!(used.contains(name), "no panel shows {name}");
    }
}

/// The panel of a dashboard with this title, and the exprs of its targets.
fn panel<'a>(dashboard: &'a Value, title: &str) -> (&'a Value, Vec<String>) {
    let panel = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|panel| panel["title"] == title)
        .unwrap_or_else(|| panic!("no panel {title:?}"));
    let exprs = panel["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|target| target["expr"].as_str().unwrap_or_default().to_owned())
        .collect();
    (panel, exprs)
}

#[test]
fn the_aethervision_dashboard_has_the_original_panels_on_known_series() {
    let (dashboard, _) = dashboard("aethervision.json", "aethervision", "AetherVision");

    // The runway in days, coloured as the original (and `autoheal vision`'s
    // status): red under 5 days (the base step, from 0), orange from 5,
    // yellow from 10, green from 20.
    let (days, exprs) = panel(&dashboard, "Days to Breach (Conservative)");
    assert_eq!(days["type"], "stat");
    assert_eq!(exprs, ["aethervision:days_to_breach"]);
    let defaults = &days["fieldConfig"]["defaults"];
    assert_eq!(defaults["unit"], "d");
    let steps: Vec<(String, Value)> = defaults["thresholds"]["steps"]
        .as_array()
        .expect("threshold steps")
        .iter()
        .map(|step| (step["color"].as_str().unwrap().to_owned(), step["value"].clone()))
        .collect();
    assert_eq!(
        steps,
        [
            ("red".to_owned(), Value::Null),
            ("orange".to_owned(), 5.into()),
            ("yellow".to_owned(), 10.into()),
            ("green".to_owned(), 20.into()),
        ]
    );

    let (runway, exprs) = panel(&dashboard, "Runway to Breach (hours) — 1h vs 6h");
    assert_eq!(runway["type"], "timeseries");
    assert_eq!(
        exprs,
        [
            "slo:payment_rate:hours_to_breach_1h",
            "slo:payment_rate:hours_to_breach_6h",
            "slo:payment_rate:hours_to_breach",
        ]
    );

    let (snapshot, exprs) = panel(&dashboard, "Ops Snapshot");
    assert_eq!(snapshot["type"], "stat");
    assert_eq!(
        exprs,
        [
            "aethervision:alerts_critical:count",
            "aethervision:probes_http_up + aethervision:probes_tcp_up",
            "aethervision:autoheal_enabled",
        ]
    );

    // Every recorded AetherVision and SLO series is on some panel
    // (slo:payment_rate:days_to_breach as aethervision:days_to_breach).
    let mut all = Vec::new();
    panel_exprs(&dashboard["panels"], &mut all);
    let shown: BTreeSet<String> = all.iter().flat_map(|expr| metric_names(expr)).collect();
    for name in recorded_names() {
        if (name.starts_with("aethervision:") || name.starts_with("slo:"))
            && name != "slo:payment_rate:days_to_breach"
        {
            assert!(shown.contains(name), "no AetherVision panel shows {name}");
        }
    }
}

/// An alerting rule's text has what people need when it fires: its
/// expression, how long, a severity, a summary, a description that shows
/// the value, a runbook.
pub(crate) fn assert_alert_complete(name: &str, block: &str) {
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
