//! The real `autoheal` binary, over loopback.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::real::{free_port, http};
use crate::support::*;

struct Host(Child);

impl Host {
    /// `autoheal serve` on `addr` with the safe defaults, its trail and
    /// cache in `dir`.
    fn serve(dir: &std::path::Path, plugins: &std::path::Path, addr: &str) -> Host {
        Self::serve_logging(dir, plugins, addr, Stdio::null())
    }

    /// As [`Host::serve`], its log (stderr, at the default level) to `log`.
    fn serve_logging(dir: &std::path::Path, plugins: &std::path::Path, addr: &str, log: Stdio) -> Host {
        Host(Self::command(dir, plugins, addr, log).spawn().unwrap())
    }

    /// The command [`Host::serve_logging`] runs.
    fn command(dir: &std::path::Path, plugins: &std::path::Path, addr: &str, log: Stdio) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_autoheal"));
        command
            .args(["serve", "--listen", addr, "--plugins-dir"])
            .arg(plugins)
            .arg("--audit-path")
            .arg(dir.join("audit.jsonl"))
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .env_remove("AUTOHEAL_ENABLED")
            .env_remove("AUTOHEAL_DRY_RUN")
            .env_remove("AUTOHEAL_LOG")
            .env_remove("NO_COLOR")
            .stdout(Stdio::null())
            .stderr(log);
        command
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_binary_serves_a_webhook_and_audits_it() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = stage_plugins(
        dir.path(),
        &["restart_container"],
        &[("restart-crm-api.toml", bundled_manifest())],
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");

    let mut host = Host::serve(dir.path(), &plugins, &addr);

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        match http(&base, "GET", "/", "") {
            Ok((200, status)) => break status,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            other => panic!("host did not come up: {other:?}"),
        }
    };
    assert_eq!(status["plugins"][0]["name"], "restart-crm-api");
    assert_eq!(status["dry_run"], true);

    let body = json!({ "version": "4", "status": "firing", "alerts": [opted_in("TcpEndpointDownFast")] })
        .to_string();
    let (code, reply) = http(&base, "POST", "/alert", &body).unwrap();
    assert_eq!(code, 200, "{reply}");
    assert_eq!(reply["decisions"][0]["decision"], "act");

    let event = loop {
        let (_, audit) = http(&base, "GET", "/audit?kind=action_dry_run,action_fail", "").unwrap();
        if let Some(event) = audit["events"].as_array().and_then(|e| e.first()) {
            break event.clone();
        }
        assert!(Instant::now() < deadline, "no action event in the audit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(event["kind"], "action_dry_run", "{event}");
    assert_eq!(event["target"], "crm-api");
    assert_eq!(event["calls"][1]["outcome"], "recorded", "{event}");

    // SIGTERM: a clean stop that commits a last event.
    let pid = host.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = host.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(audit.lines().last().unwrap().contains("host_stopping"), "{audit}");
}

#[test]
fn invalid_configuration_fails_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("autoheal.toml");
    std::fs::write(&config, "enabled = true\ndry_runn = false\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_autoheal"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("dry_runn") && stderr.contains("autoheal.toml"),
        "{stderr}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_autoheal"))
        .args(["serve"])
        .env("AUTOHEAL_DRY_RUN", "maybe")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("AUTOHEAL_DRY_RUN") && stderr.contains("maybe"),
        "{stderr}"
    );
}

/// Real mode with a webhook anyone could call is refused at start, with what
/// to do about it; the token (or the explicit override) lets it start.
#[test]
fn an_unsafe_real_start_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |extra: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_autoheal"));
        command
            .args(["serve", "--listen", "127.0.0.1:1", "--plugins-dir"])
            .arg(dir.path().join("missing-plugins"))
            .arg("--audit-path")
            .arg(dir.path().join("audit.jsonl"))
            // Not the default `data/cache` (and its key) in the source tree.
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .env("AUTOHEAL_ENABLED", "true")
            .env("AUTOHEAL_DRY_RUN", "false")
            .env("AUTOHEAL_CONTAINER_ENGINE", "none")
            .env_remove("AUTOHEAL_WEBHOOK_TOKEN")
            .env_remove("AUTOHEAL_WEBHOOK_TOKEN_FILE");
        for (var, value) in extra {
            command.env(var, value);
        }
        command.output().unwrap()
    };
    let refused = serve(&[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("AUTOHEAL_WEBHOOK_TOKEN") && stderr.contains("allow_unauthenticated_real"),
        "{stderr}"
    );
    // With a token the config is accepted: the start goes on to the next step
    // (here the plugins directory, which does not exist).
    let with_token = serve(&[("AUTOHEAL_WEBHOOK_TOKEN", "a-webhook-token-0123456789")]);
    let stderr = String::from_utf8_lossy(&with_token.stderr);
    assert!(!stderr.contains("allow_unauthenticated_real"), "{stderr}");
    assert!(stderr.contains("missing-plugins"), "{stderr}");
}

/// SIGTERM waits for actions in flight; a second signal stops at once.
#[test]
fn a_second_stop_signal_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = stage_plugins(
        dir.path(),
        &["misbehave"],
        &[("slow.toml", fixture("Slow", "loop", "timeout_ms = 60000", ""))],
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let mut host = Host::serve(dir.path(), &plugins, &addr);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http(&base, "GET", "/", ""), Ok((200, _))) {
        assert!(Instant::now() < deadline, "host did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let body = json!({ "version": "4", "status": "firing", "alerts": [opted_in("Slow")] }).to_string();
    let (code, reply) = http(&base, "POST", "/alert", &body).unwrap();
    assert_eq!(
        (code, reply["decisions"][0]["decision"].clone()),
        (200, json!("act"))
    );

    let pid = host.0.id().to_string();
    let signal = || {
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        )
    };
    signal();
    // The first stop waits for the minute-long action...
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        host.0.try_wait().unwrap().is_none(),
        "the first signal did not wait for the action"
    );
    // ...the second does not.
    signal();
    let stopped = Instant::now();
    let exit = loop {
        if let Some(exit) = host.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "a second signal did not stop the host"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(exit.code(), Some(130));
}

/// Waits until the host at `base` answers `GET /` with 200.
fn wait_up(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(http(base, "GET", "/", ""), Ok((200, _))) {
        assert!(Instant::now() < deadline, "host did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every action (done, dry-run, failed) and every skip is a log line naming
/// the plugin, the alert and the target; a log written to a file has no
/// terminal colour codes.
#[test]
fn the_log_names_each_action_skip_and_failure_without_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = stage_plugins(
        dir.path(),
        &["restart_container", "misbehave"],
        &[
            ("restart-crm-api.toml", bundled_manifest()),
            ("broken.toml", fixture("Broken", "err", "", "")),
        ],
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let log_path = dir.path().join("autoheal.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut host = Host::serve_logging(dir.path(), &plugins, &addr, Stdio::from(log));
    wait_up(&base);

    let alerts = json!([
        opted_in("TcpEndpointDownFast"),
        opted_in("Broken"),
        alert("DiskAlmostFull", "firing", json!({})),
    ]);
    let body = json!({ "version": "4", "status": "firing", "alerts": alerts }).to_string();
    let (code, reply) = http(&base, "POST", "/alert", &body).unwrap();
    assert_eq!(code, 200, "{reply}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, audit) = http(&base, "GET", "/audit?kind=action_dry_run,action_fail", "").unwrap();
        if audit["count"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no two action events: {audit}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = host.0.kill();
    let _ = host.0.wait();

    let text = std::fs::read_to_string(&log_path).unwrap();
    let line = |needles: &[&str]| {
        text.lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .unwrap_or_else(|| panic!("no log line with {needles:?}:\n{text}"))
            .to_owned()
    };
    let done = line(&["action recorded, not done (dry-run)", "plugin=restart-crm-api"]);
    assert!(
        done.contains("alertname=TcpEndpointDownFast") && done.contains("target=crm-api"),
        "{done}"
    );
    let failed = line(&["action failed", "plugin=Broken"]);
    assert!(
        failed.contains("WARN") && failed.contains("alertname=Broken") && failed.contains("fixture error"),
        "{failed}"
    );
    let skipped = line(&["decision: skip", "alertname=DiskAlmostFull"]);
    assert!(skipped.contains("reason=not_annotated"), "{skipped}");
    assert!(!text.contains('\x1b'), "colour codes in a log file:\n{text:?}");
}

/// One request over a fresh connection; the whole answer, head and body.
fn raw(base: &str, method: &str, path: &str, headers: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// A first start with an empty compile cache and the Python plugin (tens
/// of seconds to compile): the port answers at once; until the plugins are
/// loaded a webhook gets 503 with Retry-After (Alertmanager sends it
/// again), `GET /` says `starting`, while /metrics and the kill switch
/// already work; the log says which plugin compiles, how far along and how
/// long it took. Then the webhook is taken.
#[test]
fn a_first_start_answers_while_its_plugins_compile() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = |path: &str| {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../plugins")
                .join(path),
        )
        .unwrap()
    };
    let plugins = stage_plugins(
        dir.path(),
        &["restart_container", "restart_unhealthy_py"],
        &[
            ("restart-crm-api.toml", bundled_manifest()),
            (
                "restart-unhealthy-py.toml",
                shipped("restart-unhealthy-py/restart-unhealthy-py.toml"),
            ),
        ],
    );
    assert!(
        !dir.path().join("cache").exists(),
        "the compile cache starts empty"
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let log_path = dir.path().join("autoheal.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = Host::command(dir.path(), &plugins, &addr, Stdio::from(log));
    command.env("AUTOHEAL_OPERATOR_TOKEN", OPERATOR_TOKEN);
    let spawned = Instant::now();
    let mut host = Host(command.spawn().unwrap());

    // The port opens within seconds, the plugins still loading.
    let starting = loop {
        match http(&base, "GET", "/", "") {
            Ok((503, body)) => break body,
            Ok((200, body)) => panic!("ready before the Python plugin compiled? {body}"),
            _ => {
                assert!(
                    spawned.elapsed() < Duration::from_secs(15),
                    "the port did not open while the plugins load"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert_eq!(starting["status"], "starting", "{starting}");
    assert!(
        starting["error"].as_str().unwrap().contains("starting"),
        "{starting}"
    );

    let webhook = json!({ "version": "4", "status": "firing", "alerts": [opted_in("TcpEndpointDownFast")] })
        .to_string();
    let refused = raw(&base, "POST", "/alert", "", &webhook);
    let head = refused.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 503"), "{refused}");
    assert!(head.contains("\r\nretry-after: 5"), "{refused}");
    assert!(refused.contains("autoheal is starting"), "{refused}");

    let (code, metrics) = http(&base, "GET", "/metrics", "").unwrap();
    assert_eq!(code, 200, "{metrics}");
    assert!(
        metrics.as_str().unwrap().contains("autoheal_enabled 0"),
        "{metrics}"
    );
    let (code, flipped) = http(
        &base,
        "POST",
        "/admin/enabled",
        r#"{"enabled": true, "by": "early"}"#,
    )
    .unwrap();
    assert_eq!(code, 200, "the kill switch while loading: {flipped}");
    let (_, still) = http(&base, "GET", "/", "").unwrap();
    assert_eq!(
        still["status"], "starting",
        "the Python plugin compiled already? {still}"
    );
    assert_eq!(still["enabled"], true, "{still}");
    // The Rust plugin takes a moment; then the Python one, tens of seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    while http(&base, "GET", "/", "").unwrap().1["startup"]["current"] != "restart-unhealthy-py" {
        assert!(Instant::now() < deadline, "the Python plugin never began to load");
        std::thread::sleep(Duration::from_millis(20));
    }
    // `autoheal status` shows it, and exits 3: not ready yet.
    let status = Command::new(env!("CARGO_BIN_EXE_autoheal"))
        .env_clear()
        .env("AUTOHEAL_URL", &base)
        .env("AUTOHEAL_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .arg("status")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(3), "{said}");
    assert!(
        said.contains("STARTING: loading plugin restart-unhealthy-py (2/2)"),
        "{said}"
    );
    // The console says so too, and which plugin it waits for.
    let browser = crate::console::Browser::start();
    browser.goto(&format!("{base}/console"));
    let health = browser.wait_for(
        "the console saying the host starts",
        Duration::from_secs(20),
        "const el = document.querySelector('#host-health');
         return el.dataset.state === 'starting' && el.textContent;",
    );
    assert_eq!(
        health, "starting: loading plugin restart-unhealthy-py (2/2)",
        "{health}"
    );

    let deadline = Instant::now() + Duration::from_secs(240);
    let ready = loop {
        match http(&base, "GET", "/", "") {
            Ok((200, body)) => break body,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => panic!("not ready within 4 minutes: {other:?}"),
        }
    };
    assert_eq!(ready["status"], "ready");
    browser.wait_for(
        "the console saying the host is up",
        Duration::from_secs(20),
        "return document.querySelector('#host-health').dataset.state === 'ok';",
    );
    drop(browser);
    assert_eq!(ready["plugins"].as_array().unwrap().len(), 2, "{ready}");
    let (code, reply) = http(&base, "POST", "/alert", &webhook).unwrap();
    assert_eq!(code, 200, "{reply}");
    assert_eq!(reply["decisions"][0]["decision"], "act", "{reply}");
    let (_, rejected) = http(&base, "GET", "/audit?kind=webhook_rejected", "").unwrap();
    assert_eq!(rejected["events"][0]["status"], 503, "{rejected}");
    let _ = host.0.kill();
    let _ = host.0.wait();

    let text = std::fs::read_to_string(&log_path).unwrap();
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no log line with {needle:?}:\n{text}"))
            .to_owned()
    };
    let listening = line("autoheal listening; loading plugins");
    // The size as the log says it, of the component as built today.
    let mb = std::fs::metadata(guest("restart_unhealthy_py")).unwrap().len() as f64 / 1e6;
    let compiling = line(&format!("loading plugin restart-unhealthy-py (2/2, {mb:.1} MB)"));
    let compiled = line("plugin restart-unhealthy-py (2/2) loaded in");
    assert!(compiled.contains(", compiled"), "{compiled}");
    line("loading plugin restart-crm-api (1/2, 0.1 MB)");
    let serving = line("autoheal serving");
    // In that order: listening first, serving last.
    let at = |l: &str| text.find(l).unwrap();
    assert!(
        at(&listening) < at(&compiling) && at(&compiling) < at(&compiled) && at(&compiled) < at(&serving)
    );
}
