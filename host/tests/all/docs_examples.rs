//! Every example in the docs, executed (issue 39): each fenced block of the
//! guide, the reference pages and the READMEs is run or checked against the
//! real thing, or carries a reason why not, which is printed and counted.
//!
//! - ```` ```toml ````: a plugin manifest (it names a `component`) is parsed
//!   by the manifest crate with the host's default bounds, as `autoheal
//!   plugin check` does; anything else is a config, read by `RawConfig` and
//!   validated, as `serve` does. `<!-- excerpt: PATH -->` instead says the
//!   block is a piece of the file PATH: it must appear there, and the file
//!   is checked whole.
//! - ```` ```sh ```` (`bash`, `shell`; in `console` only the `$ ` lines):
//!   every command runs with bash, in order, and must succeed: `autoheal`
//!   is the binary under test, aimed at a real host this test serves (with
//!   a real Alertmanager); `127.0.0.1:9009`, the documented address, becomes
//!   the test host's. The test host has a webhook token, as a deployed one
//!   does, so a `curl` to `/alert` is given it as Alertmanager would send
//!   it. A `--follow` command runs for two seconds. `cd DIR` moves the
//!   following commands, from a scratch directory that holds what the docs
//!   assume (`plugins.d/`, `alert.json`, `data/audit.jsonl`, `monitoring/`).
//! - ```` ```json ```` shows an answer: `<!-- answer: METHOD /path -->` names
//!   its route; it is compared by shape (same keys, same JSON types,
//!   recursively, arrays by their first element) with the answer of the
//!   last command to that route in the same file, or, for a `GET` no
//!   command made, with the route's answer now.
//! - ```` ```text ````: a diagram or a printout, not an example.
//! - Any other block (YAML, systemd, WIT, Rust, Python, JavaScript), and an
//!   example that cannot run here, needs `<!-- not-run: REASON -->` on the
//!   line before it (blank lines between are fine).
//!
//! A failure names the file and the line of the block's opening fence.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoheal::config::RawConfig;
use autoheal_sandbox::manifest::Manifest;
use serde_json::{Value, json};

use crate::real::{Alertmanager, ServedHost, free_port, http};
use crate::support::*;

/// The pages whose examples run, in reading order.
const PAGES: &[&str] = &[
    "README.md",
    "docs/README.md",
    "docs/configuration.md",
    "docs/decisions.md",
    "docs/plugins.md",
    "docs/cli.md",
    "docs/http.md",
    "docs/audit.md",
    "docs/metrics.md",
    "docs/notifications.md",
    "docs/container-engines.md",
    "docs/operations.md",
    "docs/security.md",
    "docs/sign-in.md",
    "docs/replicas.md",
    "docs/vision.md",
    "docs/MIGRATING.md",
    "docs/development.md",
    "plugins/README.md",
    "web/README.md",
    "monitoring/README.md",
];

/// Deployment files whose TOML is read as `serve` reads it (the YAML and
/// systemd ones are proven by the deployment tests).
const DEPLOYMENT_CONFIGS: &[&str] = &["docs/replicas/autoheal.toml"];

/// The address the docs write for a host.
const DOCUMENTED_ADDRESS: &str = "127.0.0.1:9009";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

// ---------------------------------------------------------------------------
// The fence extractor.

/// What the HTML comment right before a block says about it.
#[derive(Debug, Clone, PartialEq)]
enum Marker {
    NotRun(String),
    Answer { method: String, path: String },
    Excerpt(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Fence {
    /// 1-based line of the opening fence.
    line: usize,
    /// The info string's first word (`""` if none).
    lang: String,
    marker: Option<Marker>,
    /// The lines between the fences, without the fence's indentation.
    body: String,
}

fn parse_marker(comment: &str) -> Option<Marker> {
    let inner = comment.strip_prefix("<!--")?.strip_suffix("-->")?.trim();
    let (word, rest) = inner.split_once(':')?;
    let rest = rest.trim();
    match word.trim() {
        "not-run" => Some(Marker::NotRun(rest.to_owned())),
        "excerpt" => Some(Marker::Excerpt(rest.to_owned())),
        "answer" => {
            let (method, path) = rest.split_once(' ')?;
            Some(Marker::Answer {
                method: method.to_owned(),
                path: path.trim().to_owned(),
            })
        }
        _ => None,
    }
}

/// The fenced blocks of a markdown text, in order. An unclosed fence is an
/// error naming its line.
fn fences(text: &str) -> Result<Vec<Fence>, String> {
    let mut found = Vec::new();
    // The marker of the last non-blank line, if it was one.
    let mut marker = None;
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        let Some(info) = trimmed.strip_prefix("```") else {
            marker = parse_marker(trimmed.trim_end());
            continue;
        };
        let indent = line.len() - trimmed.len();
        let mut body = Vec::new();
        let mut closed = false;
        for (_, inner) in lines.by_ref() {
            if inner.trim() == "```" {
                closed = true;
                break;
            }
            let cut = inner.len() - inner.trim_start().len();
            body.push(&inner[cut.min(indent)..]);
        }
        if !closed {
            return Err(format!("line {}: the fence is never closed", index + 1));
        }
        found.push(Fence {
            line: index + 1,
            lang: info.split_whitespace().next().unwrap_or("").to_owned(),
            marker: marker.take(),
            body: body.join("\n"),
        });
    }
    Ok(found)
}

/// The commands of a shell block: a command ends at a line's end outside
/// quotes and not after `\\`; comments (a `#` at a word's start, outside
/// quotes) are dropped; in a `console` block only the lines after `$ `.
fn commands(lang: &str, body: &str) -> Vec<String> {
    let lines: Vec<&str> = if lang == "console" {
        body.lines().filter_map(|l| l.strip_prefix("$ ")).collect()
    } else {
        body.lines().collect()
    };
    let mut found = Vec::new();
    let mut current = String::new();
    let (mut single, mut double) = (false, false);
    for line in lines {
        let mut previous = ' ';
        for c in line.chars() {
            match c {
                '\'' if !double => single = !single,
                '"' if !single => double = !double,
                '#' if !single && !double && previous.is_whitespace() => break,
                _ => {}
            }
            current.push(c);
            previous = c;
        }
        if single || double {
            current.push('\n');
            continue;
        }
        let trimmed = current.trim_end();
        if let Some(head) = trimmed.strip_suffix('\\') {
            current = format!("{} ", head.trim_end());
            continue;
        }
        let command = current.trim().to_owned();
        if !command.is_empty() {
            found.push(command);
        }
        current.clear();
    }
    found
}

#[test]
fn the_extractor_finds_blocks_their_languages_markers_and_lines() {
    let text = "# Title\n\n<!-- not-run: builds everything -->\n\n```sh\ncargo xtask run\n```\n\
                text\n```\nplain\n```\n<!-- answer: GET /approvals -->\n```json\n{\"pending\": []}\n```\n\
                1. a step:\n   ```rust\n   fn main() {}\n       indented();\n   ```\n";
    let found = fences(text).unwrap();
    assert_eq!(found.len(), 4, "{found:#?}");
    assert_eq!(
        found[0],
        Fence {
            line: 5,
            lang: "sh".into(),
            marker: Some(Marker::NotRun("builds everything".into())),
            body: "cargo xtask run".into(),
        }
    );
    // Prose between a marker and a block ends the marker.
    assert_eq!(
        (found[1].line, found[1].lang.as_str(), &found[1].marker),
        (9, "", &None)
    );
    assert_eq!(
        found[2].marker,
        Some(Marker::Answer {
            method: "GET".into(),
            path: "/approvals".into()
        })
    );
    assert_eq!(found[3].body, "fn main() {}\n    indented();");
    assert_eq!(
        fences("a\n```toml\nx = 1\n").unwrap_err(),
        "line 2: the fence is never closed"
    );
}

#[test]
fn shell_blocks_split_into_commands_without_comments() {
    let body = "# a comment line\nautoheal status      # GET /\n\
                curl -s 'http://x/a?b=1#c' -d '{\n  \"a\": 1\n}' \\\n  -H 'x: y'\n\
                echo \"# kept\"  # dropped\n";
    assert_eq!(
        commands("sh", body),
        [
            "autoheal status",
            "curl -s 'http://x/a?b=1#c' -d '{\n  \"a\": 1\n}'   -H 'x: y'",
            "echo \"# kept\"",
        ]
    );
    assert_eq!(
        commands("console", "$ autoheal vision   # now\nPrometheus ok\n"),
        ["autoheal vision"]
    );
}

// ---------------------------------------------------------------------------
// Comparing answers by shape.

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Where `documented` and `real` differ in shape, each as `PATH: what`.
fn shape_differences(documented: &Value, real: &Value, at: &str) -> Vec<String> {
    match (documented, real) {
        (Value::Object(doc), Value::Object(got)) => {
            let mut differences = Vec::new();
            for key in doc.keys().filter(|k| !got.contains_key(*k)) {
                differences.push(format!("{at}.{key}: documented, not in the real answer"));
            }
            for key in got.keys().filter(|k| !doc.contains_key(*k)) {
                differences.push(format!(
                    "{at}.{key}: in the real answer ({}), not documented",
                    type_name(&got[key])
                ));
            }
            for (key, value) in doc.iter().filter(|(k, _)| got.contains_key(*k)) {
                differences.extend(shape_differences(value, &got[key], &format!("{at}.{key}")));
            }
            differences
        }
        (Value::Array(doc), Value::Array(got)) => match (doc.first(), got.first()) {
            (Some(doc), Some(got)) => shape_differences(doc, got, &format!("{at}[0]")),
            (Some(_), None) => vec![format!(
                "{at}: the real answer's array is empty, nothing to compare"
            )],
            _ => Vec::new(),
        },
        _ if type_name(documented) == type_name(real) => Vec::new(),
        _ => vec![format!(
            "{at}: documented as {}, really {} ({real})",
            type_name(documented),
            type_name(real)
        )],
    }
}

#[test]
fn shapes_compare_keys_and_types_recursively_and_arrays_by_their_first_element() {
    let documented = json!({"pending": [{"approval": "id", "expires_in_sec": 60}], "n": 1});
    let same = json!({"pending": [{"approval": "other", "expires_in_sec": 5}, {}], "n": 7});
    assert!(shape_differences(&documented, &same, "").is_empty());
    let real = json!({"pending": [{"approval": 3, "cause": "manifest"}], "n": 1});
    assert_eq!(
        shape_differences(&documented, &real, ""),
        [
            ".pending[0].expires_in_sec: documented, not in the real answer",
            ".pending[0].cause: in the real answer (string), not documented",
            ".pending[0].approval: documented as string, really number (3)",
        ]
    );
    assert_eq!(
        shape_differences(&json!([1]), &json!([]), ""),
        [": the real answer's array is empty, nothing to compare"]
    );
}

// ---------------------------------------------------------------------------
// The stage the examples run on.

/// Approval ids the docs write, each replaced by a pending approval's id
/// (`approve` one, `deny` another; a third stays for `GET /approvals`).
const DOCUMENTED_APPROVAL_IDS: &[&str] = &["3f9c2a71d04e8b15", "8d1e5b0c7a2f4e96"];

/// Alerts whose plugins ask for an operator; one approval is pending for each.
const APPROVAL_ALERTS: &[&str] = &[
    "UptimeProbeFailing",
    "CrmMetricsScrapeStale",
    "ContainerUnhealthy",
];

struct Stage {
    served: ServedHost,
    _alertmanager: Alertmanager,
    scratch: tempfile::TempDir,
    cwd: PathBuf,
    substitutions: Vec<(String, String)>,
    /// The last output of each `METHOD /path` a command asked, in this page.
    answers: HashMap<String, String>,
}

impl Stage {
    async fn start() -> Stage {
        let port = free_port();
        let alertmanager = Alertmanager::start(&format!("http://127.0.0.1:{port}/alert"));
        let am_url = alertmanager.url.clone();
        let fake = Arc::new(autoheal_containers::FakeRuntime::new());
        fake.add_running("crm-api", Duration::from_secs(3600));
        let mut plugins = vec![crm_plugin()];
        for alertname in APPROVAL_ALERTS {
            let name = format!("approve-{}", alertname.to_lowercase());
            let extra =
                "[policy]\napproval = \"required\"\n[config]\ncontainer = \"crm-api\"\nmin_uptime_sec = 0";
            let text = manifest(&name, "restart_container.wasm", &[alertname], &["crm-api"], extra);
            plugins.push((Box::leak(format!("{name}.toml").into_boxed_str()) as &str, text));
        }
        // Real mode (on a recording runtime): approvals are asked only then.
        let served = ServedHost::start_on(port, &plugins, fake, move |c| {
            real(c);
            c.alertmanager_url = am_url.into();
        })
        .await;
        let alerts: Vec<Value> = APPROVAL_ALERTS.iter().map(|a| opted_in(a)).collect();
        served.post_alerts(json!(alerts)).await;
        served
            .wait_for(
                "approval_requested",
                APPROVAL_ALERTS.len(),
                Duration::from_secs(30),
            )
            .await;
        let (_, pending) = get(&served.url, "/approvals").await;
        let ids: Vec<String> = pending["pending"]
            .as_array()
            .unwrap_or_else(|| panic!("GET /approvals: {pending}"))
            .iter()
            .map(|p| p["approval"].as_str().unwrap().to_owned())
            .collect();

        let scratch = tempfile::tempdir().unwrap();
        stage_scratch(scratch.path(), &served);
        let address = served.url.trim_start_matches("http://").to_owned();
        let mut substitutions = vec![(DOCUMENTED_ADDRESS.to_owned(), address)];
        for (documented, real) in DOCUMENTED_APPROVAL_IDS.iter().zip(&ids) {
            substitutions.push((documented.to_string(), real.clone()));
        }
        Stage {
            cwd: scratch.path().to_owned(),
            served,
            _alertmanager: alertmanager,
            scratch,
            substitutions,
            answers: HashMap::new(),
        }
    }

    /// Runs one command of a block; `Err` says how it failed.
    fn run(&mut self, command: &str) -> Result<(), String> {
        let mut line = command.to_owned();
        for (documented, real) in &self.substitutions {
            line = line.replace(documented, real);
        }
        if let Some(dir) = line.strip_prefix("cd ") {
            self.cwd = self.cwd.join(dir.trim());
            return Ok(());
        }
        let route = curl_route(&line);
        if route.as_ref().is_some_and(|(_, path)| path.starts_with("/alert")) {
            // As Alertmanager sends it to a host with a webhook token.
            line = line.replacen(
                "curl ",
                &format!("curl -H 'Authorization: Bearer {WEBHOOK_TOKEN}' "),
                1,
            );
        }
        let follows = line.contains("--follow");
        let mut child = Command::new("bash")
            .args(["-c", &line])
            .current_dir(&self.cwd)
            .env_clear()
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.bin_dir().display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("HOME", self.scratch.path())
            // The toolchain stays where it is installed, whatever HOME says;
            // a plugin the docs build shares the target directory that
            // `plugin new`'s own test keeps, so only its first build is slow.
            .env("RUSTUP_HOME", toolchain_home("RUSTUP_HOME", ".rustup"))
            .env("CARGO_HOME", toolchain_home("CARGO_HOME", ".cargo"))
            .env("CARGO_TARGET_DIR", crate::plugin_cli::plugin_new_target())
            .env("NO_COLOR", "1")
            .env("AUTOHEAL_URL", &self.served.url)
            .env("AUTOHEAL_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env("AUTOHEAL_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
            .env("AUTOHEAL_CACHE_DIR", shared_cache_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now()
            + if follows {
                Duration::from_secs(2)
            } else {
                Duration::from_secs(120)
            };
        while child.try_wait().map_err(|e| e.to_string())?.is_none() {
            if Instant::now() > deadline {
                child.kill().ok();
                let output = child.wait_with_output().unwrap();
                return if follows {
                    Ok(())
                } else {
                    Err(format!(
                        "still running after 120 s: {}",
                        String::from_utf8_lossy(&output.stderr)
                    ))
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            return Err(format!(
                "{}: {}{}",
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        if let Some((method, path)) = route {
            self.answers
                .insert(format!("{method} {}", path_only(&path)), stdout);
        }
        Ok(())
    }

    fn bin_dir(&self) -> PathBuf {
        self.scratch.path().join("bin")
    }

    /// The real answer a documented one is held to.
    async fn answer(&self, method: &str, path: &str) -> Result<Value, String> {
        if let Some(output) = self.answers.get(&format!("{method} {}", path_only(path))) {
            return serde_json::from_str(output)
                .map_err(|e| format!("the answer is not JSON ({e}): {output}"));
        }
        if method != "GET" {
            return Err(format!("no command of this page asked {method} {path}"));
        }
        let (status, body) = get(&self.served.url, path).await;
        if status != 200 {
            return Err(format!("GET {path} answered {status}: {body}"));
        }
        Ok(body)
    }
}

async fn get(url: &str, path: &str) -> (u16, Value) {
    let (url, path) = (url.to_owned(), path.to_owned());
    tokio::task::spawn_blocking(move || http(&url, "GET", &path, "").unwrap())
        .await
        .unwrap()
}

fn path_only(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// The method and path a `curl` command asks, if it is one.
fn curl_route(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix("curl ")?;
    let url = rest
        .split_whitespace()
        .map(|word| word.trim_matches(|c| c == '\'' || c == '"'))
        .find(|word| word.starts_with("http://"))?;
    let path = url.trim_start_matches("http://");
    let path = &path[path.find('/').unwrap_or(path.len())..];
    let method = if rest.contains(" -d ") || rest.contains(" --data") {
        "POST"
    } else {
        "GET"
    };
    Some((method.to_owned(), path.to_owned()))
}

/// What the docs' commands assume is at hand where they run.
fn stage_scratch(dir: &Path, served: &ServedHost) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_autoheal"), bin.join("autoheal")).unwrap();
    // The bundled plugin, as `cargo xtask run` stages it.
    let plugins = dir.join("plugins.d");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(guest("restart_container"), plugins.join("restart_container.wasm")).unwrap();
    std::fs::write(plugins.join("restart-crm-api.toml"), bundled_manifest()).unwrap();
    std::fs::write(
        dir.join("alert.json"),
        serde_json::to_string_pretty(&opted_in("TcpEndpointDownFast")).unwrap(),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::os::unix::fs::symlink(&served.host.config.audit_path, dir.join("data/audit.jsonl")).unwrap();
    std::os::unix::fs::symlink(repo_root().join("monitoring"), dir.join("monitoring")).unwrap();
}

// ---------------------------------------------------------------------------
// Checking each kind of block.

/// A TOML block: a manifest if it names a component, else a config.
fn check_toml(file: &str, text: &str) -> Result<&'static str, String> {
    let table: toml::Table = text.parse().map_err(|e| format!("not TOML: {e}"))?;
    let bounds = RawConfig::default()
        .validate()
        .expect("the default config is valid")
        .manifest_bounds();
    if table.contains_key("component") {
        Manifest::parse(file, text, bounds).map_err(|e| format!("manifest rejected: {}", e.message))?;
        Ok("manifest")
    } else {
        let raw = RawConfig::from_toml(text).map_err(|e| format!("config rejected: {e}"))?;
        raw.validate().map_err(|e| format!("config rejected: {e}"))?;
        Ok("config")
    }
}

/// A block that says it is a piece of `path`: each of its lines, in order,
/// is a line of the file (compared trimmed).
fn check_excerpt(body: &str, path: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(repo_root().join(path)).map_err(|e| format!("{path}: {e}"))?;
    let mut file_lines = text.lines().map(str::trim);
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !file_lines.any(|l| l == line) {
            return Err(format!("`{line}` is not in {path} (in this order)"));
        }
    }
    if path.ends_with(".toml") {
        check_toml(path, &text)?;
    }
    Ok(())
}

const SHELLS: &[&str] = &["sh", "bash", "shell", "console"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_in_the_docs_runs() {
    let mut stage = Stage::start().await;
    let mut failures = Vec::new();
    let mut not_run = Vec::new();
    let mut counts: HashMap<&str, usize> = HashMap::new();

    for page in PAGES {
        let text = std::fs::read_to_string(repo_root().join(page)).unwrap();
        let blocks = match fences(&text) {
            Ok(blocks) => blocks,
            Err(e) => {
                failures.push(format!("{page}: {e}"));
                continue;
            }
        };
        stage.answers.clear();
        stage.cwd = stage.scratch.path().to_owned();
        for block in blocks {
            let at = format!("{page}:{}", block.line);
            match (&block.marker, block.lang.as_str()) {
                (Some(Marker::NotRun(reason)), _) => {
                    if reason.is_empty() {
                        failures.push(format!("{at}: a not-run marker needs a reason"));
                    }
                    not_run.push(format!("{at} ({}): {reason}", block.lang));
                }
                (Some(Marker::Excerpt(path)), _) => match check_excerpt(&block.body, path) {
                    Ok(()) => *counts.entry("excerpt").or_default() += 1,
                    Err(e) => failures.push(format!("{at}: {e}")),
                },
                (_, "toml") => match check_toml(page, &block.body) {
                    Ok(kind) => *counts.entry(kind).or_default() += 1,
                    Err(e) => failures.push(format!("{at}: {e}")),
                },
                (_, lang) if SHELLS.contains(&lang) => {
                    for command in commands(lang, &block.body) {
                        match tokio::task::block_in_place(|| stage.run(&command)) {
                            Ok(()) => *counts.entry("command").or_default() += 1,
                            Err(e) => failures.push(format!("{at}: `{command}` failed: {e}")),
                        }
                    }
                }
                (Some(Marker::Answer { method, path }), "json") => {
                    let documented: Value = match serde_json::from_str(&block.body) {
                        Ok(value) => value,
                        Err(e) => {
                            failures.push(format!("{at}: not JSON: {e}"));
                            continue;
                        }
                    };
                    match stage.answer(method, path).await {
                        Ok(real) => {
                            let differences = shape_differences(&documented, &real, "");
                            if differences.is_empty() {
                                *counts.entry("answer").or_default() += 1;
                            } else {
                                let real = serde_json::to_string_pretty(&real).unwrap();
                                failures.push(format!(
                                    "{at}: the answer of {method} {path} has another shape:\n    {}\n  the real answer:\n{}",
                                    differences.join("\n    "),
                                    &real[..real.len().min(4000)]
                                ));
                            }
                        }
                        Err(e) => failures.push(format!("{at}: {e}")),
                    }
                }
                (_, "json") => failures.push(format!(
                    "{at}: a JSON block needs `<!-- answer: METHOD /path -->` (or not-run with a reason)"
                )),
                (_, "text") => *counts.entry("text").or_default() += 1,
                (_, "") => failures.push(format!(
                    "{at}: give the block a language (`text` for a diagram or a printout)"
                )),
                (_, lang) => failures.push(format!(
                    "{at}: a {lang} block is neither run nor marked `<!-- not-run: REASON -->`"
                )),
            }
        }
    }
    for path in DEPLOYMENT_CONFIGS {
        let text = std::fs::read_to_string(repo_root().join(path)).unwrap();
        match check_toml(path, &text) {
            Ok(kind) => *counts.entry(kind).or_default() += 1,
            Err(e) => failures.push(format!("{path}: {e}")),
        }
    }

    let mut counted: Vec<_> = counts.into_iter().collect();
    counted.sort();
    println!("docs examples checked: {counted:?}");
    println!("{} blocks not run:", not_run.len());
    for line in &not_run {
        println!("  {line}");
    }
    assert!(
        failures.is_empty(),
        "{} docs examples fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Where rustup or cargo keep the toolchain: `var` if set, else `dir`
/// under the real home.
fn toolchain_home(var: &str, dir: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(dir))
}
