//! SSE fan-out under load, recorded in BENCHMARKS.md.
//!
//! Starts the real `autoheal` binary, connects SUBSCRIBERS clients to
//! `GET /events`, then posts webhooks so that the host records RATE events per
//! second for SECONDS seconds. Each client measures, for every event, the
//! time from the event's `ts` (stamped by the host when recorded) to its
//! arrival. Reports p50/p99/max delivery latency, how many deliveries arrived,
//! and the host's peak resident memory.
//!
//! Run: `cargo bench -p autoheal --bench sse` (SUBSCRIBERS, RATE, SECONDS and
//! FSYNC — the audit fsync policy, default `never` — can be set in the environment).

#[allow(dead_code)] // each bench uses some of the shared helpers
mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Latency histogram buckets: 0.1 ms each, up to 2 s (the last one is overflow).
const BUCKETS: usize = 20_000;
const BUCKET_SECS: f64 = 0.0001;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn post(addr: &str, path: &str, body: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn get(addr: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let pid = pid.to_string();
    (
        common::proc_status_kib(&pid, "VmRSS:"),
        common::proc_status_kib(&pid, "VmHWM:"),
    )
}

struct Stats {
    histogram: Vec<AtomicU64>,
    delivered: AtomicU64,
    lagged: AtomicU64,
}

async fn subscriber(addr: String, stats: Arc<Stats>, ready: Arc<AtomicU64>) {
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(
            format!("GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    // One reused buffer, no allocation per line: the clients share the
    // machine with the host, so their own cost is kept small.
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut line = Vec::with_capacity(4096);
    let mut counted = false;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if !counted {
            if line == b"\r\n" {
                // End of the response headers.
                counted = true;
                ready.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        if line.starts_with(b"event: lagged") {
            stats.lagged.fetch_add(1, Ordering::Relaxed);
        }
        if !line.starts_with(b"data: ") {
            continue;
        }
        let Some(at) = line.windows(5).position(|w| w == b"\"ts\":") else {
            continue;
        };
        let rest = &line[at + 5..];
        let end = rest
            .iter()
            .position(|b| *b == b',' || *b == b'}')
            .unwrap_or(rest.len());
        let Some(ts) = std::str::from_utf8(&rest[..end])
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
        else {
            continue;
        };
        let latency = (unix_now() - ts).max(0.0);
        let bucket = ((latency / BUCKET_SECS) as usize).min(BUCKETS - 1);
        stats.histogram[bucket].fetch_add(1, Ordering::Relaxed);
        stats.delivered.fetch_add(1, Ordering::Relaxed);
    }
}

fn percentile(histogram: &[u64], total: u64, p: f64) -> f64 {
    let target = (total as f64 * p).ceil() as u64;
    let mut seen = 0;
    for (i, count) in histogram.iter().enumerate() {
        seen += count;
        if seen >= target {
            return (i as f64 + 1.0) * BUCKET_SECS * 1000.0;
        }
    }
    f64::INFINITY
}

fn main() {
    let subscribers = env_or("SUBSCRIBERS", 1000);
    let rate = env_or("RATE", 1000);
    let seconds = env_or("SECONDS", 10);

    let dir = tempfile::tempdir().unwrap();
    let (mut host, addr) = common::serve_process(dir.path(), |command| {
        // The poster sends one webhook at a time and each waits for its
        // webhook_received to be committed; without fsync per batch it can
        // keep the rate, and the fan-out is what is measured here.
        command.env(
            "AUTOHEAL_AUDIT_FSYNC",
            std::env::var("FSYNC").unwrap_or_else(|_| "never".into()),
        );
    });
    let (idle_rss, _) = rss_kib(host.id());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let stats = Arc::new(Stats {
        histogram: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        delivered: AtomicU64::new(0),
        lagged: AtomicU64::new(0),
    });
    let ready = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(30);
    for _ in 0..subscribers {
        runtime.spawn(subscriber(addr.clone(), stats.clone(), ready.clone()));
    }
    while ready.load(Ordering::Relaxed) < subscribers {
        assert!(Instant::now() < deadline, "subscribers did not connect");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (connected_rss, _) = rss_kib(host.id());

    // Each webhook of 9 unannotated alerts records 10 events.
    let per_webhook = 10u64;
    let webhooks_per_sec = rate / per_webhook;
    let alerts: Vec<String> = (0..per_webhook - 1)
        .map(|i| format!(r#"{{"status":"firing","labels":{{"alertname":"Load{i}"}}}}"#))
        .collect();
    let body = format!(r#"{{"version":"4","alerts":[{}]}}"#, alerts.join(","));
    let interval = Duration::from_secs_f64(1.0 / webhooks_per_sec as f64);
    let started = Instant::now();
    let mut peak_rss = 0;
    let total_webhooks = webhooks_per_sec * seconds;
    for i in 0..total_webhooks {
        let due = started + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let response = post(&addr, "/alert", &body);
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        if i % webhooks_per_sec == 0 {
            peak_rss = peak_rss.max(rss_kib(host.id()).0);
        }
    }
    let sent_for = started.elapsed();
    let expected = total_webhooks * per_webhook * subscribers;
    let settle = Instant::now() + Duration::from_secs(30);
    while stats.delivered.load(Ordering::Relaxed) < expected && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(100));
    }
    peak_rss = peak_rss.max(rss_kib(host.id()).0);
    let metrics = get(&addr, "/metrics");
    let subscribers_seen = metrics
        .lines()
        .find(|l| l.starts_with("autoheal_sse_subscribers "))
        .unwrap_or("")
        .to_owned();

    let histogram: Vec<u64> = stats
        .histogram
        .iter()
        .map(|b| b.load(Ordering::Relaxed))
        .collect();
    let delivered = stats.delivered.load(Ordering::Relaxed);
    let max_bucket = histogram.iter().rposition(|c| *c > 0).unwrap_or(0);
    println!(
        "SSE fan-out: {subscribers} subscribers, {} events/s for {seconds} s (sent in {:.1} s)",
        webhooks_per_sec * per_webhook,
        sent_for.as_secs_f64()
    );
    println!(
        "  deliveries: {delivered} of {expected} ({:.3} %)",
        delivered as f64 * 100.0 / expected as f64
    );
    println!(
        "  latency: p50 {:.1} ms  p99 {:.1} ms  p99.9 {:.1} ms  max {}",
        percentile(&histogram, delivered, 0.50),
        percentile(&histogram, delivered, 0.99),
        percentile(&histogram, delivered, 0.999),
        if max_bucket == BUCKETS - 1 {
            ">= 2000 ms".to_owned()
        } else {
            format!("{:.1} ms", (max_bucket + 1) as f64 * BUCKET_SECS * 1000.0)
        }
    );
    println!("  lagged notices: {}", stats.lagged.load(Ordering::Relaxed));
    println!(
        "  host RSS: idle {:.1} MiB, {subscribers} connected {:.1} MiB, peak under load {:.1} MiB  ({subscribers_seen})",
        idle_rss as f64 / 1024.0,
        connected_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );
    let _ = host.kill();
    let _ = host.wait();
}
