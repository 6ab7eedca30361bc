//! Plugins in Python and JavaScript, in the same sandbox as Rust ones:
//! the bundled examples restart a real unhealthy container (and only it)
//! through the real server and say, with the SDK's skip(), when they leave
//! a healthy one alone, the hostile fixtures are stopped and said why,
//! and `plugin new --lang python|js` makes a project that builds with one
//! command and passes `plugin test`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::real::*;
use crate::support::*;

// A Python or JavaScript component takes 10-35 s to compile in a debug
// build on a quiet machine, and several times that on a busy one.
const WAIT: Duration = Duration::from_secs(300);

/// The bundled manifest of `plugin` (a directory of plugins/), aimed at
/// `containers`, with a short stop timeout and no uptime guard.
fn bundled(plugin: &str, containers: &[&str]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins")
        .join(plugin)
        .join(format!("{plugin}.toml"));
    std::fs::read_to_string(path)
        .unwrap()
        .replace(
            "containers = [\"crm-api\"]",
            &format!("containers = {containers:?}"),
        )
        .replace("stop_timeout_sec = 10", "stop_timeout_sec = 1")
        .replace("min_uptime_sec = \"60\"", "min_uptime_sec = \"0\"")
}

/// One firing `alertname` naming `containers` in its label.
fn unhealthy_alert(alertname: &str, containers: &str) -> Value {
    json!([{
        "status": "firing",
        "labels": { "alertname": alertname, "container": containers },
        "annotations": { "autoheal": "true" },
    }])
}

/// For each language: of two containers the alert names, the unhealthy one
/// is restarted and the healthy one left alone, through the real server and
/// Podman's Docker API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_and_javascript_examples_restart_only_the_unhealthy_container() {
    let podman = Podman::start();
    // Each twin of the Rust example matches an alert of its own, so that
    // one `ContainerUnhealthy` runs one bundled plugin, not three.
    for (plugin, component, alertname) in [
        (
            "restart-unhealthy-py",
            "restart_unhealthy_py",
            "ContainerUnhealthyPy",
        ),
        (
            "restart-unhealthy-js",
            "restart_unhealthy_js",
            "ContainerUnhealthyJs",
        ),
    ] {
        let (sick, fine) = (unique("sick"), unique("fine"));
        podman.run_httpd_with_health(&sick, free_port(), false);
        podman.run_httpd_with_health(&fine, free_port(), true);
        let (sick_before, fine_before) = (podman.started_at(&sick), podman.started_at(&fine));

        // A cooldown per container: the restart of one does not hold the other.
        let manifest = bundled(plugin, &[&sick, &fine]) + "\n[cooldown_key]\nlabels = [\"container\"]\n";
        let file = format!("{plugin}.toml");
        let host =
            ServedHost::start_staged(0, &[component], &[(&file, manifest)], podman.runtime(), real).await;
        let reply = host
            .post_alerts(unhealthy_alert(alertname, &format!("{sick},{fine}")))
            .await;
        assert_eq!(reply["decisions"][0]["plugin"], plugin, "{reply}");
        let done = host.wait_for("action_ok,action_fail", 1, WAIT).await.remove(0);
        assert_eq!(done["kind"], "action_ok", "{done:#}");
        assert_eq!(
            done["output"],
            format!("restarted {sick}; skipped: {fine} is healthy"),
            "{done:#}"
        );
        assert_eq!(done["targets"], json!([sick]), "{done:#}");
        assert_ne!(
            podman.started_at(&sick),
            sick_before,
            "{plugin} did not restart {sick}"
        );
        assert_eq!(
            podman.started_at(&fine),
            fine_before,
            "{plugin} restarted the healthy {fine}"
        );
        let plugins = host.audit("plugin_loaded").await;
        assert_eq!(plugins[0]["plugin"], plugin);
        assert_eq!(plugins[0]["wit"], "0.4.0");

        // An alert for the healthy one alone: the SDK's skip() says the
        // plugin decided not to act, and the host records just that.
        let fine_started = podman.started_at(&fine);
        host.post_alerts(unhealthy_alert(alertname, &fine)).await;
        let skipped = host.wait_for("action_skipped", 1, WAIT).await.remove(0);
        assert_eq!(skipped["plugin"], plugin, "{skipped:#}");
        assert_eq!(skipped["output"], format!("{fine} is healthy"), "{skipped:#}");
        assert_eq!(skipped["targets"], json!([]), "{skipped:#}");
        assert_eq!(
            podman.started_at(&fine),
            fine_started,
            "{plugin} restarted {fine}"
        );
    }
}

/// The hostile fixtures of each language through the real server: a loop
/// and an allocation without bound are stopped (and say why), files,
/// sockets and the environment are not there, an exception is an
/// `action_fail` with its message and traceback; a well-behaved one answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_python_and_javascript_plugins_are_stopped_and_the_host_goes_on() {
    let modes = [
        ("Loop", "loop", "timeout_ms = 1000"),
        // Time to reach its cap while others compute on the plugin thread.
        ("Bomb", "alloc", "timeout_ms = 30000"),
        ("Files", "read_file", ""),
        ("Socket", "socket", ""),
        ("Env", "env", ""),
        ("Raise", "raise", ""),
        // Room for the 10 MiB message and its copies (the runtime's own
        // MemoryError at 64 MiB would be the cap, rightly reported as such),
        // and time: it builds and copies 10 MiB while the loop and the bomb
        // compute beside it on the plugin thread (one, on two cores).
        ("Huge", "raise_big", "memory_mb = 256\ntimeout_ms = 60000"),
        ("Fine", "ok", ""),
    ];
    for (language, component) in [("python", "misbehave_py"), ("javascript", "misbehave_js")] {
        let plugins: Vec<(String, String)> = modes
            .iter()
            .map(|(name, mode, limits)| {
                let name = format!("{name}-{language}");
                let text = manifest(
                    &name,
                    &format!("{component}.wasm"),
                    &[&name],
                    &[],
                    &format!("[limits]\n{limits}\n[config]\nmode = {mode:?}"),
                )
                .replacen("component =", &format!("language = {language:?}\ncomponent ="), 1);
                (format!("{name}.toml"), text)
            })
            .collect();
        let plugins: Vec<(&str, String)> = plugins.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
        let host = ServedHost::start_staged(
            0,
            &[component],
            &plugins,
            Arc::new(autoheal_containers::NoEngine),
            |c| {
                c.sandbox.max_concurrent = 8;
                c.sandbox.max_memory_mb = 256;
            },
        )
        .await;
        let loaded = host.audit("plugin_loaded").await;
        assert_eq!(
            loaded.len(),
            modes.len(),
            "{:#?}",
            host.audit("plugin_rejected").await
        );
        let alerts: Vec<Value> = modes
            .iter()
            .map(|(name, _, _)| opted_in(&format!("{name}-{language}")))
            .collect();
        host.post_alerts(Value::Array(alerts)).await;
        let done = host
            .wait_for("action_dry_run,action_fail", modes.len(), WAIT)
            .await;
        let of = |name: &str| {
            let plugin = format!("{name}-{language}");
            done.iter().find(|e| e["plugin"] == plugin).cloned().unwrap()
        };
        assert_eq!(of("Fine")["output"], "ok", "{language}");
        assert_eq!(of("Loop")["reason"], "timeout", "{language}: {:#}", of("Loop"));
        assert_eq!(of("Bomb")["reason"], "memory", "{language}: {:#}", of("Bomb"));
        assert_eq!(
            of("Files")["output"],
            "file=denied",
            "{language}: {:#}",
            of("Files")
        );
        // Python's socket module finds no network and raises; the JS SDK's
        // fetch throws an Error naming what to use instead: both caught.
        let socket = of("Socket");
        assert_eq!(socket["output"], "socket=denied", "{language}: {socket:#}");
        assert_eq!(of("Env")["output"], "env=0", "{language}: {:#}", of("Env"));
        let raised = of("Raise");
        assert_eq!(raised["kind"], "action_fail", "{language}: {raised:#}");
        assert_eq!(raised["reason"], "plugin_error", "{language}: {raised:#}");
        let error = raised["error"].as_str().unwrap();
        assert!(
            error.contains("the plugin gave up on purpose"),
            "{language}: {error}"
        );
        let trace = if language == "python" {
            "Traceback"
        } else {
            // The bundle's stack mapped back to the author's file.
            "@app.js:"
        };
        assert!(
            error.contains("Error") && error.contains(trace),
            "{language}: {error}"
        );
        // A 10 MiB error of its own is its error, cut to the answer bound,
        // not a memory failure.
        let huge = of("Huge");
        assert_eq!(huge["reason"], "plugin_error", "{language}: {huge:#}");
        assert!(
            huge["error"].as_str().unwrap().contains("[truncated: "),
            "{language}: {huge:#}"
        );
        let (status, _) = tokio::task::spawn_blocking({
            let url = host.url.clone();
            move || http(&url, "GET", "/", "").unwrap()
        })
        .await
        .unwrap();
        assert_eq!(status, 200, "the host goes on serving");
    }
}

/// `autoheal plugin new --lang python|js NAME`, then the project's one
/// build command (which installs its pinned tools), then `plugin check` and
/// `plugin test` on what it built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_new_makes_python_and_javascript_projects_that_build_and_pass_plugin_test() {
    let parent = tempfile::tempdir().unwrap();
    for (lang, name) in [("python", "py-fixer"), ("js", "js-fixer")] {
        let bin = env!("CARGO_BIN_EXE_autoheal");
        let run = |args: &[&str], dir: &std::path::Path| {
            let output = std::process::Command::new(args[0])
                .args(&args[1..])
                .current_dir(dir)
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(output.status.success(), "{args:?} failed: {text}");
            text
        };
        let made =
            tokio::task::block_in_place(|| run(&[bin, "plugin", "new", name, "--lang", lang], parent.path()));
        assert!(made.contains("./build.sh"), "{made}");
        let project = parent.path().join(name);
        let built = tokio::task::block_in_place(|| run(&["./build.sh"], &project));
        let wasm = format!("{}.wasm", name.replace('-', "_"));
        assert!(project.join(&wasm).exists(), "{built}");
        let manifest = format!("{name}.toml");
        let checked = tokio::task::block_in_place(|| run(&[bin, "plugin", "check", &manifest], &project));
        assert!(checked.contains(name), "{checked}");
        let tested = tokio::task::block_in_place(|| {
            run(
                &[bin, "plugin", "test", &manifest, "--alert", "alert.json"],
                &project,
            )
        });
        assert!(
            tested.contains("result    ok: restarted example"),
            "{lang}: {tested}"
        );
        assert!(
            tested.contains("containers.restart example → recorded"),
            "{lang}: {tested}"
        );
        // Its own unit test passes in the language's own runner.
        let unit: &[&str] = if lang == "python" {
            &["pytest-3", "-q", "-p", "no:cacheprovider"]
        } else {
            &["node", "--test"]
        };
        let units = tokio::task::block_in_place(|| run(unit, &project));
        assert!(
            units.contains("2 passed") || units.contains("# pass 2"),
            "{lang}: {units}"
        );
        if lang == "js" {
            // An import() esbuild cannot bundle would trap in the component:
            // the build refuses it, with its file and line and what to do.
            let app = project.join("app.js");
            let text = std::fs::read_to_string(&app).unwrap();
            let late = "export function later(name) { return import(name); }";
            std::fs::write(&app, format!("{text}\n{late}\n")).unwrap();
            let output = std::process::Command::new("./build.sh")
                .current_dir(&project)
                .output()
                .unwrap();
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(!output.status.success(), "{said}");
            assert!(
                said.contains("import() is not available in autoheal plugins"),
                "{said}"
            );
            let line = text.lines().count() + 2;
            assert!(
                said.contains(&format!("app.js:{line}:")),
                "its file and line: {said}"
            );
        }
    }
}

/// `autoheal plugin test` on the fixture `component` (of target/plugins.d)
/// in `language`, its `mode` config key set: the printed report.
fn plugin_test_fixture(component: &str, language: &str, mode: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    // The component beside its manifest, as a plugin author has it.
    let wasm = format!("{component}.wasm");
    std::fs::copy(guest(component), dir.path().join(&wasm)).unwrap();
    let text = manifest(
        "Trial",
        &wasm,
        &["Trial"],
        &[],
        &format!("[config]\nmode = {mode:?}"),
    )
    .replacen("component =", &format!("language = {language:?}\ncomponent ="), 1);
    std::fs::write(dir.path().join("trial.toml"), text).unwrap();
    std::fs::write(dir.path().join("alert.json"), opted_in("Trial").to_string()).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_autoheal"))
        .args(["plugin", "test", "trial.toml", "--alert", "alert.json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Through `plugin test`: a Python import inside a function (json, and a
/// module of the plugin's own importing decimal) works; in JavaScript an
/// error names app.js and its line, Intl is absent as documented, and fetch, setTimeout and an async
/// handler fail with an Error saying what to use instead (no trap).
#[test]
fn late_python_imports_work_and_javascript_errors_say_where_and_what_instead() {
    let late = plugin_test_fixture("misbehave_py", "python", "late_import");
    assert!(
        late.contains(r#"result    ok: late_import={"sum": "0.3"}"#),
        "{late}"
    );
    assert!(!late.contains("No module named"), "{late}");

    // No Intl in the interpreter (componentize-js builds it without ICU):
    // what docs/plugins.md says a plugin gets instead.
    let intl = plugin_test_fixture("misbehave_js", "javascript", "intl");
    assert!(
        intl.contains("result    ok: intl=undefined number=1234567.891 date=01/01/1970"),
        "{intl}"
    );

    let raised = plugin_test_fixture("misbehave_js", "javascript", "raise");
    let line = include_str!("../../../tests/fixtures/misbehave-js/app.js")
        .lines()
        .position(|l| l.contains("the plugin gave up on purpose"))
        .unwrap()
        + 1;
    assert!(raised.contains(&format!("@app.js:{line}:")), "{raised}");
    for (mode, says) in [
        (
            "fetch",
            "fetch is not available in autoheal plugins: a plugin has no network",
        ),
        ("timer", "setTimeout is not available in autoheal plugins"),
        ("async", "autoheal plugins answer synchronously"),
    ] {
        let report = plugin_test_fixture("misbehave_js", "javascript", mode);
        assert!(
            report.contains("result    FAILED (plugin_error)"),
            "{mode}: {report}"
        );
        assert!(report.contains(says), "{mode}: {report}");
        assert!(!report.contains("unreachable"), "{mode}: {report}");
    }
}

/// `bytes` with a custom section appended: the same code, another hash, so
/// it is compiled afresh (not taken from the compile cache).
fn with_tag(mut bytes: Vec<u8>, tag: &str) -> Vec<u8> {
    let name = b"test";
    bytes.push(0);
    bytes.push((1 + name.len() + tag.len()) as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(tag.as_bytes());
    bytes
}

/// A new version of a large (Python) plugin is compiled in the background:
/// while it compiles, alerts are handled by the old version; then by the
/// new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_python_version_compiles_in_the_background_while_the_old_one_serves() {
    // A private compile cache, gone with the test: its components are
    // made to be new ones, compiled afresh.
    let h = harness(&[], |c| {
        c.cooldowns.insert("Swap".into(), 0);
        c.cache_dir = c.audit_path.with_file_name("cache");
    })
    .await;
    let _watch = autoheal::reload::watch(h.host.clone()).unwrap();
    let dir = h.plugins_dir();
    let put = |name: &str, bytes: &[u8]| {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    };
    let version = |v: &str, component: &str, mode: &str| {
        manifest(
            "Swap",
            component,
            &["Swap"],
            &[],
            &format!("[config]\nmode = {mode:?}"),
        )
        .replace("version = \"1.0.0\"", &format!("version = {v:?}"))
        .replacen("component =", "language = \"python\"\ncomponent =", 1)
    };
    let serving = || {
        h.remediator
            .plugins()
            .get("Swap")
            .map(|p| p.manifest.version.clone())
    };
    let wait_for = |want: &'static str| {
        wait_until(&format!("Swap {want} to serve"), WAIT, || {
            (serving().as_deref() == Some(want)).then_some(())
        })
    };
    let answer = || async {
        h.process(json!([opted_in("Swap")])).await;
        h.events(&["action_dry_run", "action_fail"]).pop().unwrap()
    };
    let python = std::fs::read(guest("misbehave_py")).unwrap();

    put("v1.wasm", &with_tag(python.clone(), &unique("v1")));
    put("swap.toml", version("1.0.0", "v1.wasm", "ok").as_bytes());
    tokio::task::block_in_place(|| wait_for("1.0.0"));
    assert_eq!(answer().await["output"], "ok");

    // Version 2: another component, compiled afresh (seconds for CPython).
    put("v2.wasm", &with_tag(python, &unique("v2")));
    put("swap.toml", version("2.0.0", "v2.wasm", "env").as_bytes());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let meanwhile = answer().await;
    assert_eq!(
        meanwhile["plugin_version"], "1.0.0",
        "the old version serves meanwhile: {meanwhile:#}"
    );
    assert_eq!(meanwhile["output"], "ok");
    tokio::task::block_in_place(|| wait_for("2.0.0"));
    let after = answer().await;
    assert_eq!(
        (after["plugin_version"].as_str(), after["output"].as_str()),
        (Some("2.0.0"), Some("env=0"))
    );
    let loaded = h.events(&["plugin_loaded"]).pop().unwrap();
    assert_eq!(loaded["replaces_version"], "1.0.0", "{loaded:#}");
}
