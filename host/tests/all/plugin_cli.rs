//! `autoheal plugin test|check|new` and `POST /plugins/{name}/test`
//! (the compile cache of the CLI: `plugin_cache.rs`; `plugin dev`: `plugin_dev.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::support::*;

/// A directory with every bundled manifest and the guest components.
pub fn plugins_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for component in [
        "restart_container",
        "restart_unhealthy",
        "restart_by_label",
        "misbehave",
    ] {
        std::fs::copy(guest(component), dir.path().join(format!("{component}.wasm"))).unwrap();
    }
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    for entry in std::fs::read_dir(&bundled).unwrap() {
        let crate_dir = entry.unwrap().path();
        for file in std::fs::read_dir(&crate_dir).into_iter().flatten() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".toml") && name != "Cargo.toml" {
                std::fs::copy(&path, dir.path().join(&name)).unwrap();
            }
        }
    }
    for (name, mode, limits) in [
        ("loop", "loop", "timeout_ms = 300"),
        ("alloc", "alloc", "memory_mb = 8"),
        ("deny", "deny", ""),
    ] {
        let text = fixture(name, mode, limits, "container = \"db\"");
        std::fs::write(dir.path().join(format!("{name}.toml")), text).unwrap();
    }
    dir
}

pub fn write(dir: &Path, name: &str, value: Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path
}

/// The CLI, with its per-user compile cache (`$XDG_CACHE_HOME`) in one
/// directory for every test run on this machine rather than the home of
/// whoever runs the tests: each component compiles once.
pub fn cli() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_autoheal"));
    command
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("autoheal-test-cli-cache"),
        )
        .env_remove("AUTOHEAL_CACHE_DIR");
    command
}

pub fn autoheal(args: &[&str], paths: &[&Path]) -> (i32, String, String) {
    let mut command = cli();
    command.args(args);
    for path in paths {
        command.arg(path);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn test_plugin(manifest: &Path, alert: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["plugin", "test"];
    args.extend_from_slice(extra);
    let mut command = cli();
    command.args(&args).arg(manifest).arg("--alert").arg(alert);
    let output = command.output().unwrap();
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

/// The JSON reports of `plugin test --json` in what [`test_plugin`] returns
/// (stdout, then stderr's line about the compile cache).
fn reports_of(out: &str) -> Value {
    let end = out.rfind("]\n").expect("a JSON list of reports") + 1;
    serde_json::from_str(&out[..end]).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn plugin_test_on_the_bundled_plugins() {
    let dir = plugins_dir();
    let d = dir.path();
    let alert_for = |alertname: &str, labels: Value| {
        let mut alert = opted_in(alertname);
        for (k, v) in labels.as_object().unwrap() {
            alert["labels"][k] = v.clone();
        }
        alert
    };
    let tcp = write(d, "tcp.json", alert_for("TcpEndpointDownFast", json!({})));
    let (code, out) = test_plugin(&d.join("restart-crm-api.toml"), &tcp, &[]);
    assert_eq!(code, 0, "{out}");
    for line in [
        "plugin    restart-crm-api 0.1.0  (dry-run)",
        "decision  act",
        "containers.inspect crm-api → ok",
        "containers.restart crm-api → recorded",
        "result    ok: restarted crm-api",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    // The component path finds its manifest.
    let (code, by_component) = test_plugin(&d.join("restart_container.wasm"), &tcp, &[]);
    assert_eq!(code, 0, "{by_component}");
    assert!(by_component.contains("restart-crm-api"), "{by_component}");

    // restart-unhealthy: without a health check nothing is restarted; with
    // container states from a file, an unhealthy one is.
    let unhealthy = write(d, "unhealthy.json", alert_for("ContainerUnhealthy", json!({})));
    let (code, out) = test_plugin(&d.join("restart-unhealthy-crm-api.toml"), &unhealthy, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("result    skipped: crm-api has no health check"),
        "{out}"
    );
    let states = write(
        d,
        "states.json",
        json!([{ "name": "crm-api", "health": "unhealthy", "uptime_sec": 600 }]),
    );
    let states_arg = states.to_string_lossy().into_owned();
    let (code, out) = test_plugin(
        &d.join("restart-unhealthy-crm-api.toml"),
        &unhealthy,
        &["--containers", &states_arg],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("containers.restart crm-api → recorded"), "{out}");

    // restart-by-label: the plugin's own allow-patterns refuse postgres (exit 1).
    let worker = write(
        d,
        "worker.json",
        alert_for("ContainerDown", json!({ "container": "crm-worker" })),
    );
    let (code, out) = test_plugin(&d.join("restart-by-label.toml"), &worker, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("result    ok: restarted crm-worker"), "{out}");
    let postgres = write(
        d,
        "postgres.json",
        alert_for("ContainerDown", json!({ "container": "postgres" })),
    );
    let (code, out) = test_plugin(&d.join("restart-by-label.toml"), &postgres, &["--json"]);
    assert_eq!(code, 1, "{out}");
    let report = reports_of(&out);
    assert_eq!(report[0]["ok"], false);
    assert!(
        report[0]["error"]
            .as_str()
            .unwrap()
            .contains("does not match allow patterns"),
        "{report}"
    );
    assert_eq!(report[0]["calls"], json!([]));
}

#[test]
fn plugin_test_on_the_sandbox_fixtures() {
    let dir = plugins_dir();
    let d = dir.path();
    let cases = [
        ("loop", 1, "result    FAILED (timeout)"),
        ("alloc", 1, "result    FAILED (memory)"),
        (
            "deny",
            0,
            "containers.restart db → denied — plugin deny may not touch container \"db\"",
        ),
    ];
    for (name, exit, line) in cases {
        let alert = write(d, &format!("{name}.json"), opted_in(name));
        let (code, out) = test_plugin(&d.join(format!("{name}.toml")), &alert, &[]);
        assert_eq!(code, exit, "{name}: {out}");
        assert!(out.contains(line), "{name}: missing {line:?} in\n{out}");
    }
    // Skips are reported, and the plugin still runs for the test.
    let resolved = write(
        d,
        "resolved.json",
        alert("deny", "resolved", json!({"autoheal": "true"})),
    );
    let (_, out) = test_plugin(&d.join("deny.toml"), &resolved, &[]);
    assert!(out.contains("decision  skip (resolved)"), "{out}");
}

#[test]
fn plugin_test_says_how_many_calls_were_refused_past_the_budget() {
    let dir = plugins_dir();
    let d = dir.path();
    // 1000 restarts of an allowed container: 64 are listed, the rest refused.
    let storm = fixture("storm", "restart_storm", "", "container = \"crm-api\"");
    std::fs::write(d.join("storm.toml"), storm).unwrap();
    let alert = write(d, "storm.json", opted_in("storm"));
    let (code, out) = test_plugin(&d.join("storm.toml"), &alert, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.matches("containers.restart crm-api → recorded").count(),
        64,
        "{out}"
    );
    assert!(
        out.contains("… and 936 more call(s) refused: the budget of 64 calls per invocation was used up"),
        "{out}"
    );
    assert!(out.contains("result    ok: restarted=64"), "{out}");
    let (_, json) = test_plugin(&d.join("storm.toml"), &alert, &["--json"]);
    let report = reports_of(&json);
    assert_eq!(report[0]["calls"].as_array().unwrap().len(), 64);
    assert_eq!(report[0]["calls_over_budget"], 936, "{report}");
    // Within the budget there is no marker, and the count is 0.
    let (_, out) = test_plugin(
        &d.join("deny.toml"),
        &write(d, "deny.json", opted_in("deny")),
        &["--json"],
    );
    assert!(out.contains("\"calls_over_budget\": 0"), "{out}");
}

#[test]
fn plugin_check_validates_without_running() {
    let dir = plugins_dir();
    let (code, out, err) = autoheal(&["plugin", "check"], &[&dir.path().join("restart-crm-api.toml")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("implements autoheal:plugin/action@0.4.0"), "{out}");
    assert!(out.contains("containers  crm-api"), "{out}");

    // The network sections say what a plugin may reach (the component is
    // not needed to read them, but check loads it: the bundled ones).
    for component in ["call_runbook", "restart_if_still_failing"] {
        std::fs::copy(guest(component), dir.path().join(format!("{component}.wasm"))).unwrap();
    }
    let (code, out, err) = autoheal(&["plugin", "check"], &[&dir.path().join("call-runbook.toml")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("http        POST http://127.0.0.1:8080/runbooks/"),
        "{out}"
    );
    assert!(
        out.contains("secret      RUNBOOK_TOKEN in Authorization"),
        "{out}"
    );
    let (code, out, err) = autoheal(
        &["plugin", "check"],
        &[&dir.path().join("restart-if-still-failing.toml")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("prometheus  queries: timeout 5s, at most 20 series"),
        "{out}"
    );

    std::fs::write(
        dir.path().join("typo.toml"),
        fixture("typo", "ok", "", "").replace("[limits]", "[limit]"),
    )
    .unwrap();
    let (code, _, err) = autoheal(&["plugin", "check"], &[&dir.path().join("typo.toml")]);
    assert_eq!(code, 1);
    assert!(err.contains("typo.toml") && err.contains("limit"), "{err}");
    assert!(!err.contains("Stack backtrace"), "errors are for people: {err}");

    std::fs::copy(guest("wrong_world"), dir.path().join("wrong_world.wasm")).unwrap();
    std::fs::write(
        dir.path().join("wrong.toml"),
        manifest("wrong", "wrong_world.wasm", &["X"], &[], ""),
    )
    .unwrap();
    let (code, _, err) = autoheal(&["plugin", "check"], &[&dir.path().join("wrong.toml")]);
    assert_eq!(code, 1);
    assert!(
        err.contains("does not implement the autoheal:plugin/action world"),
        "{err}"
    );
}

#[test]
fn plugin_new_creates_a_crate_that_builds_and_passes_plugin_test() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = autoheal(&["plugin", "new", "my-first-plugin", "--dir"], &[dir.path()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created plugin my-first-plugin"), "{out}");
    let root = dir.path().join("my-first-plugin");
    let target = plugin_new_target();
    let build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    std::fs::copy(
        target.join("wasm32-wasip2/release/my_first_plugin.wasm"),
        root.join("my_first_plugin.wasm"),
    )
    .unwrap();
    let (code, out) = test_plugin(&root.join("my-first-plugin.toml"), &root.join("alert.json"), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("result    ok: restarted example"), "{out}");
    let (code, _, err) = autoheal(&["plugin", "new", "my-first-plugin", "--dir"], &[dir.path()]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
}

#[tokio::test]
async fn post_plugins_test_runs_a_loaded_plugin_in_dry_run() {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let h = harness(&[("crm.toml", bundled_manifest())], real).await;
    let call = |path: &str, body: String| {
        let request = axum::http::Request::post(path)
            .header("authorization", crate::support::authorization_for(path))
            .body(Body::from(body))
            .unwrap();
        autoheal::http::router(h.host.clone()).oneshot(request)
    };
    let response = call(
        "/plugins/restart-crm-api/test",
        opted_in("TcpEndpointDownFast").to_string(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let report = &body["reports"][0];
    assert_eq!(report["ok"], true, "{body}");
    assert_eq!(
        report["calls"][1]["outcome"], "recorded",
        "even with enabled=true, dry_run=false"
    );
    assert!(h.fake.restarts().is_empty());
    h.remediator.drain().await;
    assert!(
        h.events(&["action_ok", "action_dry_run", "action_started"])
            .is_empty(),
        "a test is not an action"
    );

    let missing = call("/plugins/nope/test", "{}".into()).await.unwrap();
    assert_eq!(missing.status(), 404);
    let bad = call("/plugins/restart-crm-api/test", "{\"status\":\"burning\"}".into())
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

/// The target directory the crates `plugin new` writes are built in by the
/// tests: one of their own (the test run holds the workspace's), kept
/// between runs so that only the first build is slow.
pub(crate) fn plugin_new_target() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugin-new-test")
}
