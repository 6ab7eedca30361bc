//! Benchmarks of the plugin fast path, recorded in BENCHMARKS.md.
//!
//! 1. One invocation of the bundled plugin (fresh store, instantiate,
//!    `handle` with an inspect and a dry-run restart, drop), with the pooling
//!    allocator and with on-demand allocation, in the same run.
//! 2. Start of the host with 10 plugins: cold (empty compile cache) and
//!    warm (artifacts cached by the previous start).
//!
//! Run: `cargo xtask build-plugins && cargo bench -p autoheal --bench invoke`

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoheal::config::RawConfig;
use autoheal_containers::FakeRuntime;
use autoheal_core::alert::Alert;
use autoheal_sandbox::PluginRuntime;
use autoheal_sandbox::SandboxConfig;
use autoheal_sandbox::breaker::RestartBreaker;
use autoheal_sandbox::capability::{ExecutionMode, HostServices};
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
        ..SandboxConfig::default()
    };
    let runtime = PluginRuntime::new(&sandbox, None).unwrap();
    let bounds = ManifestBounds { max_memory_mb: 64 };
    let manifest = Manifest::parse("restart-crm-api.toml", &manifest_text(), bounds).unwrap();
    let component = runtime.load(&component()).unwrap();
    let fake = Arc::new(FakeRuntime::new());
    fake.add_running("crm-api", Duration::from_secs(3600));
    let services = HostServices {
        containers: fake,
        breaker: Arc::new(RestartBreaker::new(3, Duration::from_secs(3600))),
        // The bench measures dry-run invocations, which record no intent.
        intents: Arc::new(autoheal_sandbox::capability::NoIntentLog),
    };
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
        assert_eq!(invocation.result.as_deref(), Ok("restarted crm-api"));
        assert_eq!(invocation.calls.len(), 2);
        if i >= WARMUP {
            samples.push(elapsed);
        }
    }
    stats(samples)
}

async fn bench_start(dir: &Path, fresh_cache: bool) -> Stats {
    let mut samples = Vec::with_capacity(STARTS);
    for i in 0..STARTS {
        let cache = dir.join("cache");
        if fresh_cache {
            let _ = std::fs::remove_dir_all(&cache);
        }
        let mut config = RawConfig {
            audit_path: dir.join(format!("audit-{i}.jsonl")),
            plugins_dir: dir.join("plugins"),
            cache_dir: cache,
            ..RawConfig::default()
        };
        config.audit_fsync = autoheal_core::audit::FsyncPolicy::EveryBatch;
        let started = Instant::now();
        let host = autoheal::app::start(config.validate().unwrap(), Arc::new(FakeRuntime::new()))
            .await
            .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(host.engine.plugins().len(), 10);
        samples.push(elapsed);
    }
    stats(samples)
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        println!(
            "plugin invocation (bundled restart-container: inspect + dry-run restart), {ITERATIONS} runs:"
        );
        for (name, pooling) in [("pooling", true), ("on-demand", false)] {
            let s = bench_invoke(pooling).await;
            println!(
                "  {name:<10} median {}  p99 {}  mean {}",
                us(s.median),
                us(s.p99),
                us(s.mean)
            );
        }

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
    });
}
