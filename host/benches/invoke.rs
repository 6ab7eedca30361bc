//! Benchmarks of the plugin fast path, recorded in BENCHMARKS.md.
//!
//! 1. One invocation of the bundled plugin (fresh store, instantiate,
//!    `handle` with an inspect and a dry-run restart, drop), with the pooling
//!    allocator and with on-demand allocation, in the same run.
//! 2. Start of the host with 10 plugins: cold (empty compile cache) and
//!    warm (artifacts cached by the previous start).
//! 3. Start of the host (one plugin, warm cache) on a 1M-event trail whose
//!    events are all inside the cooldown and breaker horizon (the worst
//!    case: nothing lets the scan stop early), and on a trail whose last
//!    line is 134 MiB; against a floor measured in the same run, reading the
//!    same file once and counting its lines.
//!
//! Run: `cargo xtask build-plugins && cargo bench -p autoheal --bench invoke`

#[allow(dead_code)] // each bench uses some of the shared helpers
mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoheal::config::RawConfig;
use autoheal_containers::FakeRuntime;
use autoheal_core::alert::Alert;
use autoheal_sandbox::PluginRuntime;
use autoheal_sandbox::SandboxConfig;
use autoheal_sandbox::capability::{Breakers, ExecutionMode, HostServices};
use autoheal_sandbox::manifest::{Manifest, ManifestBounds};
use common::{component, manifest_text, with_tag};

const WARMUP: usize = 500;
const ITERATIONS: usize = 10_000;
const STARTS: usize = 20;

struct Stats {
    median: Duration,
    p99: Duration,
    mean: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let n = samples.len();
    Stats {
        median: samples[n / 2],
        p99: samples[(n * 99 / 100).min(n - 1)],
        mean: samples.iter().sum::<Duration>() / n as u32,
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

async fn bench_invoke(pooling: bool) -> Stats {
    let sandbox = SandboxConfig {
        pooling,
        ..common::sandbox()
    };
    let runtime = PluginRuntime::new(&sandbox, None).unwrap();
    let bounds = ManifestBounds { max_memory_mb: 64 };
    let manifest = Manifest::parse("restart-crm-api.toml", &manifest_text(), bounds).unwrap();
    let component = runtime.load(&component()).unwrap();
    let fake = Arc::new(FakeRuntime::new());
    fake.add_running("crm-api", Duration::from_secs(3600));
    // The bench measures dry-run invocations, which record no intent.
    let services = HostServices::offline(
        fake,
        Breakers::with_limit(3),
        Arc::new(autoheal_sandbox::capability::NoIntentLog),
    );
    let alert: Alert = serde_json::from_value(serde_json::json!({
        "status": "firing",
        "labels": {"alertname": "TcpEndpointDownFast", "service": "crm-api"},
        "annotations": {"autoheal": "true"},
        "startsAt": "2026-11-23T10:00:00Z", "fingerprint": "0123456789abcdef",
    }))
    .unwrap();

    let mut samples = Vec::with_capacity(ITERATIONS);
    for i in 0..WARMUP + ITERATIONS {
        let started = Instant::now();
        let invocation = runtime
            .invoke(
                &component,
                &manifest,
                &alert,
                ExecutionMode::DryRun,
                services.clone(),
            )
            .await;
        let elapsed = started.elapsed();
        assert_eq!(
            invocation.result.as_ref().map(|o| o.text()),
            Ok("restarted crm-api")
        );
        assert_eq!(invocation.calls.len(), 2);
        if i >= WARMUP {
            samples.push(elapsed);
        }
    }
    stats(samples)
}

/// `app::start` with the plugins and cache of `dir` on the trail `audit`, timed.
async fn timed_start(dir: &Path, audit: &Path) -> (autoheal::app::Host, Duration) {
    let mut config = RawConfig {
        audit_path: audit.to_owned(),
        plugins_dir: dir.join("plugins"),
        cache_dir: dir.join("cache"),
        sandbox: common::sandbox(),
        ..RawConfig::default()
    };
    config.audit_fsync = autoheal_core::audit::FsyncPolicy::EveryBatch;
    let started = Instant::now();
    let host = autoheal::app::start(config.validate().unwrap(), Arc::new(FakeRuntime::new()))
        .await
        .unwrap();
    (host, started.elapsed())
}

async fn bench_start(dir: &Path, fresh_cache: bool) -> Stats {
    let mut samples = Vec::with_capacity(STARTS);
    for i in 0..STARTS {
        if fresh_cache {
            let _ = std::fs::remove_dir_all(dir.join("cache"));
        }
        let (host, elapsed) = timed_start(dir, &dir.join(format!("audit-{i}.jsonl"))).await;
        assert_eq!(host.remediator.plugins().len(), 10);
        samples.push(elapsed);
    }
    stats(samples)
}

/// A trail of `events` recent events: one in ten an `action_started` of the
/// bundled plugin, the rest cooldown skips, one second apart and ending now.
fn write_big_trail(path: &Path, events: u64) {
    use std::io::Write;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for id in 1..=events {
        let ts = now - (events - id) as f64 * 0.001;
        if id % 10 == 0 {
            writeln!(out, r#"{{"id":{id},"ts":{ts},"kind":"action_started","alertname":"TcpEndpointDownFast","cooldown_key":"restart-crm-api|TcpEndpointDownFast|{id}","cooldown_sec":3600,"cooldown_until":{until},"fingerprint":"717fc25c13187b79","generator_url":"http://prometheus.example/graph","mode":"dry_run","plugin":"restart-crm-api","plugin_version":"0.1.0","status":"firing"}}"#, until = ts + 3600.0).unwrap();
        } else {
            writeln!(out, r#"{{"id":{id},"ts":{ts},"kind":"decision_skip","alertname":"TcpEndpointDownFast","detail":"restart-crm-api acted on this alert recently","fingerprint":"717fc25c13187b79","plugin":"restart-crm-api","reason":"cooldown","remaining_sec":3600,"status":"firing"}}"#).unwrap();
        }
    }
    out.flush().unwrap();
}

/// Reading `path` once and counting its lines: what any start must at least pay.
fn floor_read(path: &Path) -> Duration {
    let started = Instant::now();
    let bytes = std::fs::read(path).unwrap();
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    std::hint::black_box(lines);
    started.elapsed()
}

async fn bench_start_on_trail(dir: &Path, trail: &Path, starts: usize) -> Stats {
    let mut samples = Vec::with_capacity(starts);
    for _ in 0..starts {
        let (host, elapsed) = timed_start(dir, trail).await;
        samples.push(elapsed);
        host.audit.flush().await.unwrap();
    }
    stats(samples)
}

async fn bench_big_trails() {
    const EVENTS: u64 = 1_000_000;
    const STARTS_ON_TRAIL: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("restart_container.wasm"), component()).unwrap();
    std::fs::write(plugins.join("restart-crm-api.toml"), manifest_text()).unwrap();

    let many = dir.path().join("many.jsonl");
    write_big_trail(&many, EVENTS);
    let huge = dir.path().join("huge.jsonl");
    std::fs::write(
        &huge,
        format!(
            "{{\"id\":1,\"ts\":1.0,\"kind\":\"host_warning\",\"detail\":\"{}\"}}\n",
            "x".repeat(134 << 20)
        ),
    )
    .unwrap();
    for (name, trail) in [("1M recent events", &many), ("one 134 MiB line", &huge)] {
        let size = std::fs::metadata(trail).unwrap().len();
        // The first start compiles the plugin into the cache; not counted.
        bench_start_on_trail(dir.path(), trail, 1).await;
        let floor = stats((0..STARTS_ON_TRAIL).map(|_| floor_read(trail)).collect());
        let start = bench_start_on_trail(dir.path(), trail, STARTS_ON_TRAIL).await;
        println!(
            "host start on a trail of {name} ({} MiB), {STARTS_ON_TRAIL} starts: median {}  max {}; \
             floor (read it once) median {}; ratio {:.1}x",
            size >> 20,
            ms(start.median),
            ms(start.p99),
            ms(floor.median),
            start.median.as_secs_f64() / floor.median.as_secs_f64()
        );
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        println!(
            "plugin invocation (bundled restart-container: inspect + dry-run restart), {ITERATIONS} runs:"
        );
        let mut pooled = Duration::ZERO;
        for (name, pooling) in [("pooling", true), ("on-demand", false)] {
            let s = bench_invoke(pooling).await;
            if pooling {
                pooled = s.median;
            }
            println!(
                "  {name:<10} median {}  p99 {}  mean {}",
                us(s.median),
                us(s.p99),
                us(s.mean)
            );
        }

        // What the original system paid per action: starting a process.
        let spawns: Vec<Duration> = (0..1000)
            .map(|_| {
                let started = Instant::now();
                let status = std::process::Command::new("/bin/true").status().unwrap();
                assert!(status.success());
                started.elapsed()
            })
            .collect();
        let spawn = stats(spawns);
        println!(
            "  /bin/true spawn, 1000 runs: median {}  p99 {}",
            us(spawn.median),
            us(spawn.p99)
        );
        println!(
            "  a spawn costs {:.1} pooled invocations (medians)",
            spawn.median.as_secs_f64() / pooled.as_secs_f64()
        );

        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::write(plugins.join("restart_container.wasm"), component()).unwrap();
        // Ten plugins with ten different components (a custom section makes
        // each file, and so each hash and cache entry, distinct).
        for i in 0..10 {
            let bytes = with_tag(component(), &format!("plugin-{i}"));
            std::fs::write(plugins.join(format!("p{i}.wasm")), bytes).unwrap();
            let text = manifest_text()
                .replace("name = \"restart-crm-api\"", &format!("name = \"p{i}\""))
                .replace("restart_container.wasm", &format!("p{i}.wasm"));
            std::fs::write(plugins.join(format!("p{i}.toml")), text).unwrap();
        }
        println!("host start with 10 plugins, {STARTS} starts:");
        let cold = bench_start(dir.path(), true).await;
        println!("  cold cache median {}  p99 {}", ms(cold.median), ms(cold.p99));
        let warm = bench_start(dir.path(), false).await;
        println!("  warm cache median {}  p99 {}", ms(warm.median), ms(warm.p99));

        bench_big_trails().await;
    });
}
