//! Plugins in Rust, Python and JavaScript side by side, recorded in
//! BENCHMARKS.md: the same work in each (the bundled restart-unhealthy
//! plugins, on a healthy container: inspect, then skip), measured in one run.
//!
//! For each language: the component's size; loading it cold (compiled, as
//! a reload of a new version does, in the background) and warm (from the
//! compile cache); one invocation's median and p99 (fresh store and
//! instance each time, the pooling allocator); the host's RSS growth per
//! loaded plugin (three copies, each its own component, loaded from the
//! cache and invoked once, so that their pages are in).
//!
//! Run: `cargo xtask build-plugins && cargo bench -p autoheal --bench languages`

#[allow(dead_code)] // each bench uses some of the shared helpers
mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoheal_containers::{ContainerInfo, FakeRuntime};
use autoheal_core::alert::Alert;
use autoheal_sandbox::capability::{Breakers, ExecutionMode, HostServices, NoIntentLog};
use autoheal_sandbox::manifest::{Manifest, ManifestBounds};
use autoheal_sandbox::{CacheLocation, PluginRuntime};
use common::{root, with_tag};

/// (language, component file, its bundled manifest).
const PLUGINS: &[(&str, &str, &str)] = &[
    (
        "rust",
        "restart_unhealthy",
        "restart-unhealthy/restart-unhealthy-crm-api.toml",
    ),
    (
        "python",
        "restart_unhealthy_py",
        "restart-unhealthy-py/restart-unhealthy-py.toml",
    ),
    (
        "javascript",
        "restart_unhealthy_js",
        "restart-unhealthy-js/restart-unhealthy-js.toml",
    ),
];
const WARMUP: usize = 50;
const COPIES: usize = 3;

fn built(name: &str) -> Vec<u8> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let path = target.join(format!("wasm32-wasip2/plugin/{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask build-plugins` first", path.display()))
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn quantiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let n = samples.len();
    (samples[n / 2], samples[(n * 99 / 100).min(n - 1)])
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn bench(language: &str, component: &str, manifest_file: &str) {
    let bytes = built(component);
    let cache = tempfile::tempdir().unwrap();
    let runtime = PluginRuntime::new(&common::sandbox(), Some(&CacheLocation::beside(cache.path()))).unwrap();
    let text = std::fs::read_to_string(root().join("plugins").join(manifest_file))
        .unwrap()
        .replace("container = \"crm-api\"", "container_label = \"container\"");
    let manifest = Manifest::parse(manifest_file, &text, ManifestBounds { max_memory_mb: 64 }).unwrap();

    let started = Instant::now();
    let loaded = runtime.load(&bytes).unwrap();
    let cold = started.elapsed();
    let started = Instant::now();
    let _again = runtime.load(&bytes).unwrap();
    let warm = started.elapsed();

    // RSS per loaded plugin: three copies, each another component (another
    // hash), compiled into the cache now; loaded from it (as a host restart
    // loads them) and invoked once after the latency run, so the compiler's
    // own heap is not counted.
    let tagged: Vec<Vec<u8>> = (0..COPIES)
        .map(|i| with_tag(bytes.clone(), &format!("{language}-{i}")))
        .collect();
    {
        let compiling =
            PluginRuntime::new(&common::sandbox(), Some(&CacheLocation::beside(cache.path()))).unwrap();
        for copy in &tagged {
            compiling.load(copy).unwrap();
        }
    }

    let fake = Arc::new(FakeRuntime::new());
    let started_at = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    fake.add(ContainerInfo {
        name: "crm-api".into(),
        state: "running".into(),
        started_at,
        restart_count: 0,
        health: Some("healthy".into()),
        labels: Default::default(),
    });
    let services = HostServices::offline(fake, Breakers::with_limit(3), Arc::new(NoIntentLog));
    let alert: Alert = serde_json::from_value(serde_json::json!({
        "status": "firing",
        "labels": {"alertname": "ContainerUnhealthy", "container": "crm-api"},
        "annotations": {"autoheal": "true"},
        "fingerprint": "0123456789abcdef",
    }))
    .unwrap();
    let invoke = |component| {
        runtime.invoke(
            component,
            &manifest,
            &alert,
            ExecutionMode::DryRun,
            services.clone(),
        )
    };
    // As many invocations as take about ten seconds, at least 200.
    let probe = Instant::now();
    invoke(&loaded).await;
    let iterations = (Duration::from_secs(10).as_secs_f64() / probe.elapsed().as_secs_f64())
        .clamp(200.0, 10_000.0) as usize;
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..WARMUP + iterations {
        let started = Instant::now();
        let invocation = invoke(&loaded).await;
        let elapsed = started.elapsed();
        let outcome = invocation.result.unwrap_or_else(|e| panic!("{language}: {e}"));
        assert!(outcome.text().contains("healthy"), "{language}: {outcome:?}");
        if i >= WARMUP {
            samples.push(elapsed);
        }
    }
    let (median, p99) = quantiles(samples);

    // Each copy loaded and invoked once (so its code and data pages are in).
    let before = rss_bytes();
    let copies: Vec<_> = tagged.iter().map(|copy| runtime.load(copy).unwrap()).collect();
    for copy in &copies {
        invoke(copy).await;
    }
    let per_plugin = rss_bytes().saturating_sub(before) / COPIES as u64;
    drop(copies);
    println!(
        "| {language} | {:.1} MB | {} | {} | {:.1} MiB | {} | {} | {iterations} |",
        bytes.len() as f64 / 1e6,
        ms(cold),
        ms(warm),
        per_plugin as f64 / (1 << 20) as f64,
        ms(median),
        ms(p99),
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| language | component | load cold (compile) | load warm (cache) | RSS per loaded plugin | invocation p50 | invocation p99 | invocations |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    runtime.block_on(async {
        for (language, component, manifest) in PLUGINS {
            bench(language, component, manifest).await;
        }
    });
}
