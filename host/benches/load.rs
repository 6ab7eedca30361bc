//! The webhook paths under closed-loop load, each against a floor measured
//! in the same run: a bare axum server that parses the same webhook JSON
//! into the same `WebhookPayload` and answers a small JSON body. Every row
//! reports autoheal / floor, so a busy machine shows in both.
//!
//! Scenarios: the cooldown-skip path (one alert), the act-every-time path
//! (cooldown 0, dry-run: a real plugin invocation per request) and
//! 50-alert webhooks (Alertmanager's groups, skip path); 1 and 50
//! connections each. The load generator is this process's own (HTTP/1.1
//! keep-alive over raw TCP, one task per connection, closed loop), on the
//! same two cores as the server — as on the machine of issue 13.
//!
//! Run: `cargo xtask bench` (builds in release, prints the machine and the
//! tables), or `cargo xtask build-plugins && cargo bench -p autoheal --bench load`.
//! SECONDS (default 5) sets each run's length.

#[allow(dead_code)] // each bench uses some of the shared helpers
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoheal::config::RawConfig;
use autoheal_containers::FakeRuntime;
use autoheal_core::alert::WebhookPayload;
use autoheal_core::audit::FsyncPolicy;
use common::{component, manifest_text};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// The allocator the `autoheal` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Run {
    requests: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    /// Answers that were not 200.
    errors: u64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

fn webhook(alerts: usize) -> String {
    let alerts: Vec<String> = (0..alerts)
        .map(|i| {
            format!(
                r#"{{"status":"firing","labels":{{"alertname":"TcpEndpointDownFast","service":"crm-api","instance":"crm-api:{i}"}},"annotations":{{"autoheal":"true"}},"startsAt":"2026-12-02T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus/graph","fingerprint":"{i:016x}"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"version":"4","groupKey":"{{}}:{{alertname=\"TcpEndpointDownFast\"}}","truncatedAlerts":0,"status":"firing","receiver":"autoheal","groupLabels":{{}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"http://alertmanager","alerts":[{}]}}"#,
        alerts.join(",")
    )
}

/// `connections` keep-alive connections posting `body` as fast as the
/// server answers, for `duration`.
async fn closed_loop(addr: SocketAddr, body: &str, connections: usize, duration: Duration) -> Run {
    let request = format!(
        "POST /alert HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let request: Arc<[u8]> = request.into_bytes().into();
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut buf = vec![0u8; 64 * 1024];
            while Instant::now() < deadline {
                let sent = Instant::now();
                stream.write_all(&request).await.unwrap();
                if !read_response(&mut stream, &mut buf).await {
                    errors += 1;
                }
                latencies.push(sent.elapsed());
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Run {
        requests: latencies.len() as u64,
        elapsed,
        p50: at(0.50),
        p99: at(0.99),
        errors,
    }
}

/// `rate` requests per second in all, spread over `connections` keep-alive
/// connections, each on its own fixed schedule; a request's latency is
/// counted from when it was due, not from when it was sent, so a slow
/// answer that delays the next request shows in the next one's latency
/// too (no coordinated omission).
async fn open_loop(addr: SocketAddr, body: &str, rate: u64, connections: u64, duration: Duration) -> Run {
    let request = format!(
        "POST /alert HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let request: Arc<[u8]> = request.into_bytes().into();
    let started = Instant::now();
    let interval = Duration::from_secs_f64(connections as f64 / rate as f64);
    let per_connection = (duration.as_secs_f64() / interval.as_secs_f64()) as u32;
    let mut tasks = Vec::new();
    for c in 0..connections {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut latencies = Vec::with_capacity(per_connection as usize);
            let mut errors = 0u64;
            let mut buf = vec![0u8; 64 * 1024];
            // Connections start staggered across one interval.
            let first = started + interval.mul_f64(c as f64 / connections as f64);
            for i in 0..per_connection {
                let due = first + interval * i;
                tokio::time::sleep_until(due.into()).await;
                stream.write_all(&request).await.unwrap();
                if !read_response(&mut stream, &mut buf).await {
                    errors += 1;
                }
                latencies.push(due.elapsed());
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Run {
        requests: latencies.len() as u64,
        elapsed,
        p50: at(0.50),
        p99: at(0.99),
        errors,
    }
}

/// Reads one response (headers, then `Content-Length` bytes); true for a 200.
async fn read_response(stream: &mut tokio::net::TcpStream, buf: &mut [u8]) -> bool {
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).await.unwrap();
        assert!(n > 0, "the server closed the connection");
        filled += n;
        let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while filled < end + 4 + length {
            let n = stream.read(&mut buf[filled..]).await.unwrap();
            assert!(n > 0, "the server closed the connection");
            filled += n;
        }
        return head.starts_with("http/1.1 200");
    }
}

/// The floor: what any server that accepts the webhook must at least do.
async fn floor_server() -> SocketAddr {
    async fn alert(body: axum::body::Bytes) -> axum::response::Response {
        use axum::response::IntoResponse;
        match serde_json::from_slice::<WebhookPayload>(&body) {
            Ok(payload) => {
                axum::Json(serde_json::json!({ "received": payload.alerts.len() })).into_response()
            }
            Err(e) => (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        }
    }
    let app = axum::Router::new().route("/alert", axum::routing::post(alert));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// autoheal with the bundled plugin (dry-run, in-process engine) whose
/// cooldown is `cooldown`.
async fn autoheal_server(dir: &std::path::Path, cooldown: &str, fsync: FsyncPolicy) -> SocketAddr {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("restart_container.wasm"), component()).unwrap();
    let manifest = manifest_text()
        .replace("cooldown = \"10m\"", &format!("cooldown = {cooldown:?}"))
        .replace("min_uptime_sec = \"60\"", "min_uptime_sec = \"0\"")
        // Every request acts: the plugin's pending limit is not what is measured.
        .replace("[config]", "max_concurrent = 64\n\n[config]");
    std::fs::write(plugins.join("restart-crm-api.toml"), manifest).unwrap();
    let mut config = RawConfig {
        audit_path: dir.join("audit.jsonl"),
        plugins_dir: plugins,
        cache_dir: dir.join("cache"),
        audit_fsync: fsync,
        ..RawConfig::default()
    };
    config.max_pending_actions = 100_000;
    let fake = Arc::new(FakeRuntime::new());
    fake.add_running("crm-api", Duration::from_secs(3600));
    let host = autoheal::app::start(config.validate().unwrap(), fake)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = autoheal::http::router(host);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let seconds: u64 = std::env::var("SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let duration = Duration::from_secs(seconds);
    // ONLY=act runs the rows whose scenario contains "act" (for profiling).
    let only = std::env::var("ONLY").ok();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let floor = floor_server().await;
        println!(
            "| scenario | fsync | connections | floor req/s | autoheal req/s | autoheal / floor | autoheal p50 | autoheal p99 | non-200 |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        // The default first: every webhook's events are fsynced before it is answered.
        for (fsync, fsync_name) in [(FsyncPolicy::EveryBatch, "every_batch"), (FsyncPolicy::Never, "never")] {
            let skip_dir = tempfile::tempdir().unwrap();
            let skip = autoheal_server(skip_dir.path(), "10m", fsync).await;
            let act_dir = tempfile::tempdir().unwrap();
            let act = autoheal_server(act_dir.path(), "0s", fsync).await;
            let (one, fifty) = (webhook(1), webhook(50));
            // Prime: the first request acts and starts the cooldowns.
            for addr in [skip, act] {
                closed_loop(addr, &fifty, 1, Duration::from_millis(200)).await;
            }
            for (name, addr, body) in [
                ("cooldown skip, 1 alert", skip, &one),
                ("act every time (dry-run), 1 alert", act, &one),
                ("50-alert webhooks, skip", skip, &fifty),
            ] {
                if !only.as_deref().is_none_or(|only| name.contains(only)) {
                    continue;
                }
                for connections in [1, 50] {
                    let base = closed_loop(floor, body, connections, duration).await;
                    let run = closed_loop(addr, body, connections, duration).await;
                    println!(
                        "| {name} | {fsync_name} | {connections} | {:.0} | {:.0} | {:.2} | {} | {} | {} |",
                        base.rate(),
                        run.rate(),
                        run.rate() / base.rate(),
                        ms(run.p50),
                        ms(run.p99),
                        run.errors + base.errors
                    );
                }
            }
            // Latency at a fixed rate, the act path (one plugin invocation per request).
            if only.as_deref().is_none_or(|only| "open loop act".contains(only)) {
                let rate = 1000;
                let base = open_loop(floor, &one, rate, 20, duration).await;
                let run = open_loop(act, &one, rate, 20, duration).await;
                println!(
                    "| act every time, open loop {rate}/s over 20 connections (floor p99 {}) | {fsync_name} | 20 | {:.0} | {:.0} | {:.2} | {} | {} | {} |",
                    ms(base.p99),
                    base.rate(),
                    run.rate(),
                    run.rate() / base.rate(),
                    ms(run.p50),
                    ms(run.p99),
                    run.errors + base.errors
                );
            }
        }
    });
}
