//! The host's memory with the bundled plugins as `cargo xtask run` stages
//! them (three in Rust, one in Python, one in JavaScript; default config):
//! a real `autoheal serve` process, its resident memory read from
//! `/proc/PID/status` (`VmRSS` now, `VmHWM` its most).
//!
//! - **cold start**: an empty compile cache, every component compiled; the
//!   peak while compiling, the RSS when ready and 5 s later (what is given back).
//! - **warm start**: the same directory again, every component read from
//!   the cache: the RSS when ready and idle 5 s later.
//! - **after load**: then 1,000 webhooks of 10 alerts each (every bundled
//!   plugin's alertnames, distinct instances; no container engine, so the
//!   plugins that act find nothing to restart): the RSS 5 s later.
//!
//! - **100 plugins** (`ONLY=many`): 80 Rust, 10 Python and 10 JavaScript
//!   plugins, each its own component (the bundled ones with a tag appended,
//!   so each is compiled and cached apart) and its own alertname: the warm
//!   start, the idle RSS, and the latency of a webhook decided against all
//!   of them (a cooldown skip, 2,000 in a row on fresh connections) against
//!   the same with one plugin loaded.
//!
//! Run: `cargo xtask build-plugins && cargo bench -p autoheal --bench memory`.

#[allow(dead_code)] // each bench uses some of the shared helpers
mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// `Name:  1234 kB` of `/proc/PID/status`, in MiB.
fn status_mib(pid: u32, name: &str) -> f64 {
    common::proc_status_kib(&pid.to_string(), name) as f64 / 1024.0
}

/// One plain HTTP/1.0 request; the status code and body.
fn request(addr: &str, head: &str, body: &str) -> (u16, String) {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let request = format!(
        "{head} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let code = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (code, body)
}

/// Waits until `GET /` answers 200 (the plugins are loaded); returns how
/// long it took.
fn ready(addr: &str, started: Instant) -> Duration {
    let deadline = started + Duration::from_secs(300);
    while request(addr, "GET /", "").0 != 200 {
        assert!(Instant::now() < deadline, "the host did not get ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

/// The staged bundled plugins (`cargo xtask build-plugins` writes them).
fn stage_plugins(dir: &Path) {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| common::root().join("target"));
    let staged = target.join("plugins.d");
    let to = dir.join("plugins");
    std::fs::create_dir_all(&to).unwrap();
    let entries = std::fs::read_dir(&staged)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask build-plugins` first", staged.display()));
    for entry in entries {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn serve(dir: &Path) -> (Child, String, Instant) {
    let started = Instant::now();
    let (child, addr) = common::serve_process(dir, |_| {});
    (child, addr, started)
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// 10 alerts: two of each bundled plugin's alertnames, numbered from `first`.
fn mixed_webhook(first: u64) -> String {
    const NAMES: [&str; 5] = [
        "TcpEndpointDownFast",
        "ContainerDown",
        "ContainerUnhealthy",
        "ContainerUnhealthyPy",
        "ContainerUnhealthyJs",
    ];
    let alerts: Vec<String> = (0..10)
        .map(|i| {
            let n = first + i;
            format!(
                r#"{{"status":"firing","labels":{{"alertname":"{}","service":"crm-api","instance":"crm-api:{n}","container":"crm-api"}},"annotations":{{"autoheal":"true"}},"startsAt":"2026-12-02T10:00:00Z","fingerprint":"{n:016x}"}}"#,
                NAMES[i as usize % NAMES.len()]
            )
        })
        .collect();
    format!(
        r#"{{"version":"4","status":"firing","receiver":"autoheal","groupLabels":{{}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"http://alertmanager","alerts":[{}]}}"#,
        alerts.join(",")
    )
}

/// The staged bundled plugins' directory.
fn staged() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| common::root().join("target"));
    target.join("plugins.d")
}

/// `manifest` as plugin `name`, of `component`, answering `alertname` only.
fn renamed(manifest: &str, name: &str, component: &str, alertname: &str) -> String {
    manifest
        .lines()
        .map(|line| {
            if line.starts_with("name = ") {
                format!("name = {name:?}")
            } else if line.starts_with("component = ") {
                format!("component = {component:?}")
            } else if line.starts_with("alertnames = ") {
                format!("alertnames = [{alertname:?}]")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// 80 Rust, 10 Python, 10 JavaScript plugins in `dir/plugins`, each its own
/// component; the alertname of the first Rust one.
fn many_plugins(dir: &Path) -> &'static str {
    let from = staged();
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for (kind, count, wasm, manifest) in [
        ("rust", 80, "restart_container.wasm", "restart-crm-api.toml"),
        ("py", 10, "restart_unhealthy_py.wasm", "restart-unhealthy-py.toml"),
        ("js", 10, "restart_unhealthy_js.wasm", "restart-unhealthy-js.toml"),
    ] {
        let bytes = std::fs::read(from.join(wasm))
            .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask build-plugins` first", from.display()));
        let manifest = std::fs::read_to_string(from.join(manifest)).unwrap();
        for i in 0..count {
            let component = format!("many_{kind}_{i}.wasm");
            std::fs::write(
                plugins.join(&component),
                common::with_tag(bytes.clone(), &format!("{kind}{i}")),
            )
            .unwrap();
            let text = renamed(
                &manifest,
                &format!("many-{kind}-{i}"),
                &component,
                &format!("Many_{kind}_{i}"),
            );
            std::fs::write(plugins.join(format!("many-{kind}-{i}.toml")), text).unwrap();
        }
    }
    "Many_rust_0"
}

/// One firing alert named `alertname`.
fn one_alert(alertname: &str) -> String {
    format!(
        r#"{{"version":"4","status":"firing","receiver":"autoheal","groupLabels":{{}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"http://alertmanager","alerts":[{{"status":"firing","labels":{{"alertname":"{alertname}","container":"crm-api"}},"annotations":{{"autoheal":"true"}},"startsAt":"2026-12-02T10:00:00Z","fingerprint":"00000000000000aa"}}]}}"#
    )
}

/// p50 and p99 of `count` webhooks of `body`, one after the other.
fn webhook_latency(addr: &str, body: &str, count: usize) -> (f64, f64) {
    let mut latencies: Vec<Duration> = (0..count)
        .map(|_| {
            let sent = Instant::now();
            assert_eq!(request(addr, "POST /alert", body).0, 200);
            sent.elapsed()
        })
        .collect();
    latencies.sort();
    let at = |q: f64| latencies[((count as f64 * q) as usize).min(count - 1)].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

fn many() {
    println!(
        "\n| 100 plugins (80 Rust, 10 Python, 10 JavaScript) against 1 | plugins | ready after | RSS idle (5 s) | peak | webhook p50 | webhook p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    // One plugin: the bundled restart-crm-api alone.
    let one = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(one.path().join("plugins")).unwrap();
    for file in ["restart-crm-api.toml", "restart_container.wasm"] {
        std::fs::copy(staged().join(file), one.path().join("plugins").join(file)).unwrap();
    }
    let hundred = tempfile::tempdir().unwrap();
    let alertname = many_plugins(hundred.path());
    for (what, dir, plugins, alertname) in [
        ("one", one.path(), 1, "TcpEndpointDownFast"),
        ("a hundred", hundred.path(), 100, alertname),
    ] {
        // Cold first, to fill the cache; measured warm.
        let (host, addr, started) = serve(dir);
        let cold = ready(&addr, started);
        stop(host);
        let (host, addr, started) = serve(dir);
        let warm = ready(&addr, started);
        std::thread::sleep(Duration::from_secs(5));
        let pid = host.id();
        let (rss, peak) = (status_mib(pid, "VmRSS:"), status_mib(pid, "VmHWM:"));
        // The first acts (in dry-run); the rest are cooldown skips, decided against every plugin.
        let body = one_alert(alertname);
        let (p50, p99) = webhook_latency(&addr, &body, 2000);
        println!(
            "| {what}, warm cache (cold: {:.1} s) | {plugins} | {:.2} s | {rss:.0} MiB | {peak:.0} MiB | {p50:.2} ms | {p99:.2} ms |",
            cold.as_secs_f64(),
            warm.as_secs_f64()
        );
        stop(host);
    }
}

fn main() {
    let only = std::env::var("ONLY").unwrap_or_default();
    if only.is_empty() || only == "bundled" {
        bundled();
    }
    if only.is_empty() || only == "many" {
        many();
    }
}

fn bundled() {
    let dir = tempfile::tempdir().unwrap();
    stage_plugins(dir.path());
    println!(
        "| the bundled plugins (3 Rust, 1 Python, 1 JavaScript), default config | RSS now | peak (VmHWM) | ready after |"
    );
    println!("|---|---|---|---|");

    let (host, addr, started) = serve(dir.path());
    let pid = host.id();
    let took = ready(&addr, started);
    let (at_ready, peak) = (status_mib(pid, "VmRSS:"), status_mib(pid, "VmHWM:"));
    println!(
        "| cold start (empty cache, 5 compiled), when ready | {at_ready:.0} MiB | {peak:.0} MiB | {:.1} s |",
        took.as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(5));
    println!(
        "| cold start, 5 s later | {:.0} MiB | {:.0} MiB | |",
        status_mib(pid, "VmRSS:"),
        status_mib(pid, "VmHWM:")
    );
    stop(host);

    let (host, addr, started) = serve(dir.path());
    let pid = host.id();
    let took = ready(&addr, started);
    println!(
        "| warm start (from the cache), when ready | {:.0} MiB | {:.0} MiB | {:.2} s |",
        status_mib(pid, "VmRSS:"),
        status_mib(pid, "VmHWM:"),
        took.as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(5));
    println!(
        "| warm start, idle 5 s later | {:.0} MiB | {:.0} MiB | |",
        status_mib(pid, "VmRSS:"),
        status_mib(pid, "VmHWM:")
    );

    let mut answered = [0u64; 2];
    for n in 0..1000 {
        let (code, _) = request(&addr, "POST /alert", &mixed_webhook(n * 10));
        answered[usize::from(code != 200)] += 1;
    }
    std::thread::sleep(Duration::from_secs(5));
    println!(
        "| after 1,000 webhooks of 10 alerts ({} answered 200, {} not), 5 s later | {:.0} MiB | {:.0} MiB | |",
        answered[0],
        answered[1],
        status_mib(pid, "VmRSS:"),
        status_mib(pid, "VmHWM:")
    );
    let (_, status) = request(&addr, "GET /", "");
    let memory: serde_json::Value = serde_json::from_str(&status).unwrap_or_default();
    println!("\n`GET /` then says: memory = {}", memory["memory"]);
    stop(host);
}
