//! The load generator of the HTTP benches (its own, closed and open loop,
//! HTTP/1.1 keep-alive over raw TCP, one task per connection) and the
//! autoheal server they load.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoheal::config::RawConfig;
use autoheal_containers::FakeRuntime;
use autoheal_core::audit::FsyncPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{component, manifest_text};

pub struct Run {
    pub requests: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    /// Answers that were not 200.
    pub errors: u64,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

pub fn webhook(alerts: usize) -> String {
    webhook_from(0, alerts)
}

/// A webhook of `alerts` alerts numbered from `first`: distinct instances
/// and fingerprints, so that webhooks from different `first`s share none.
pub fn webhook_from(first: u64, alerts: usize) -> String {
    let alerts: Vec<String> = (first..first + alerts as u64)
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

/// The floor: what any server that accepts the webhook must at least do.
pub async fn floor_server() -> SocketAddr {
    async fn alert(body: axum::body::Bytes) -> axum::response::Response {
        use axum::response::IntoResponse;
        match serde_json::from_slice::<autoheal_core::alert::WebhookPayload>(&body) {
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

/// The bytes of one keep-alive `POST /alert` of `body`.
pub fn post_alert(addr: SocketAddr, body: &str) -> Arc<[u8]> {
    let request = format!(
        "POST /alert HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    request.into_bytes().into()
}

/// The bytes of one keep-alive `GET` of `path_and_query`.
pub fn get(addr: SocketAddr, path_and_query: &str) -> Arc<[u8]> {
    format!("GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\n\r\n")
        .into_bytes()
        .into()
}

pub async fn connect(addr: SocketAddr) -> tokio::net::TcpStream {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// One connection's latencies and non-200 count.
pub type Connection = tokio::task::JoinHandle<(Vec<Duration>, u64)>;

/// Waits for every connection and sums them up as one run from `started`.
pub async fn summarize(connections: Vec<Connection>, started: Instant) -> Run {
    let mut latencies = Vec::new();
    let mut errors = 0;
    for connection in connections {
        let (l, e) = connection.await.unwrap();
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

/// `connections` keep-alive connections sending `request` as fast as the
/// server answers, for `duration`.
pub async fn closed_loop(
    addr: SocketAddr,
    request: &Arc<[u8]>,
    connections: usize,
    duration: Duration,
) -> Run {
    let request = request.clone();
    closed_loop_of(addr, move |_| request.clone(), connections, duration).await
}

/// [`closed_loop`] with each request made by `request` from its number
/// (unique across the run's connections): e.g. a distinct alert each.
pub async fn closed_loop_of(
    addr: SocketAddr,
    request: impl Fn(u64) -> Arc<[u8]> + Send + Sync + 'static,
    connections: usize,
    duration: Duration,
) -> Run {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let request = Arc::new(request);
    let numbers = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (request, numbers) = (request.clone(), numbers.clone());
        tasks.push(tokio::spawn(async move {
            let mut stream = connect(addr).await;
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut buf = Vec::new();
            while Instant::now() < deadline {
                let request = request(numbers.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
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
    summarize(tasks, started).await
}

/// `rate` requests per second in all, spread over `connections` keep-alive
/// connections, each on its own fixed schedule; a request's latency is
/// counted from when it was due, not from when it was sent, so a slow
/// answer that delays the next request shows in the next one's latency
/// too (no coordinated omission).
pub async fn open_loop(
    addr: SocketAddr,
    request: &Arc<[u8]>,
    rate: u64,
    connections: u64,
    duration: Duration,
) -> Run {
    let started = Instant::now();
    let interval = Duration::from_secs_f64(connections as f64 / rate as f64);
    let per_connection = (duration.as_secs_f64() / interval.as_secs_f64()) as u32;
    let mut tasks = Vec::new();
    for c in 0..connections {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = connect(addr).await;
            let mut latencies = Vec::with_capacity(per_connection as usize);
            let mut errors = 0u64;
            let mut buf = Vec::new();
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
    summarize(tasks, started).await
}

/// Reads one response (headers, then `Content-Length` bytes) into `buf`,
/// which grows to the largest response; true for a 200.
pub async fn read_response(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut filled = 0;
    loop {
        if buf.len() < filled + 16 * 1024 {
            buf.resize(filled + 64 * 1024, 0);
        }
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
        if buf.len() < end + 4 + length {
            buf.resize(end + 4 + length, 0);
        }
        while filled < end + 4 + length {
            let n = stream.read(&mut buf[filled..]).await.unwrap();
            assert!(n > 0, "the server closed the connection");
            filled += n;
        }
        return head.starts_with("http/1.1 200");
    }
}

/// Waits until the host at `addr` has no action queued (`/metrics`'
/// `autoheal_actions_queued`), so that the next row does not run beside
/// the backlog of the last.
pub async fn wait_for_empty_queue(addr: SocketAddr) {
    let request = get(addr, "/metrics");
    let mut buf = Vec::new();
    loop {
        let mut stream = connect(addr).await;
        stream.write_all(&request).await.unwrap();
        assert!(read_response(&mut stream, &mut buf).await);
        let text = String::from_utf8_lossy(&buf);
        let queued = text
            .lines()
            .find_map(|l| l.strip_prefix("autoheal_actions_queued "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        if queued == Some(0.0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// autoheal with the bundled plugin (dry-run, in-process engine) whose
/// cooldown is `cooldown`.
pub async fn autoheal_server(dir: &std::path::Path, cooldown: &str, fsync: FsyncPolicy) -> SocketAddr {
    let manifest = |text: String| {
        text.replace("cooldown = \"10m\"", &format!("cooldown = {cooldown:?}"))
            .replace("min_uptime_sec = \"60\"", "min_uptime_sec = \"0\"")
            // Every request acts: the plugin's pending limit is not what is measured.
            .replace("[config]", "max_concurrent = 64\n\n[config]")
    };
    bundled_server(dir, manifest, |config| {
        config.audit_fsync = fsync;
        config.max_pending_actions = 100_000;
    })
    .await
}

/// autoheal with the bundled plugin and manifest as shipped (its limits:
/// `max_concurrent` 4) and the default config (`max_pending_actions` 1,024,
/// dry-run), but for what `edit` changes in the manifest (say, a cooldown
/// of 0, so that every alert acts). Its trail is `dir/audit.jsonl`.
pub async fn shipped_server(dir: &std::path::Path, edit: impl FnOnce(String) -> String) -> SocketAddr {
    bundled_server(dir, edit, |_| {}).await
}

/// autoheal with the bundled restart-container plugin in `dir/plugins`, its
/// manifest as `manifest` makes it from the shipped one, its trail and cache
/// in `dir` (a trail already there is kept: the `/audit` bench writes one
/// first) and the default config as `config` changes it.
async fn bundled_server(
    dir: &std::path::Path,
    manifest: impl FnOnce(String) -> String,
    config: impl FnOnce(&mut RawConfig),
) -> SocketAddr {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("restart_container.wasm"), component()).unwrap();
    std::fs::write(plugins.join("restart-crm-api.toml"), manifest(manifest_text())).unwrap();
    let mut raw = RawConfig {
        audit_path: dir.join("audit.jsonl"),
        plugins_dir: plugins,
        cache_dir: dir.join("cache"),
        sandbox: super::sandbox(),
        ..RawConfig::default()
    };
    config(&mut raw);
    serve(raw).await
}

/// autoheal on `config`, its engine a fake with crm-api running, served on
/// a free port of 127.0.0.1.
pub async fn serve(config: RawConfig) -> SocketAddr {
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

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Each run's length: `SECONDS` from the environment, else `default`.
pub fn run_length(default: u64) -> Duration {
    let seconds = std::env::var("SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    Duration::from_secs(seconds)
}

/// The runtime the host and the load generator share: two workers, as
/// many as the machine's cores.
pub fn bench_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
