//! A busy plugin: the routes an operator needs while plugins compute.
//!
//! Every invocation slot (`[sandbox] max_concurrent` as shipped, 32) is held
//! by a plugin that spins until its deadline (the misbehaving fixture's
//! `loop`, `timeout_ms = 60000`), and `GET /`, `GET /metrics`,
//! `POST /admin/enabled` and a cooldown-skip `POST /alert` are timed, one
//! keep-alive connection each in turn, against the same routes on the same
//! host idle, in the same run. Each row reports busy / idle at p99.
//!
//! Run: `cargo xtask build-plugins && cargo bench -p autoheal --bench busy`
//! (also in `cargo xtask bench`). SECONDS (default 3) sets each run's length.

#[allow(dead_code)] // each bench uses some of the shared helpers
mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoheal::config::RawConfig;
use common::loadgen::{bench_runtime, closed_loop, get, ms, post_alert, run_length, serve, webhook};
use common::{component, manifest_text, root};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const OPERATOR_TOKEN: &str = "bench-operator-token-0123456789";

fn misbehave() -> Vec<u8> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    std::fs::read(target.join("wasm32-wasip2/plugin/misbehave.wasm"))
        .expect("run `cargo xtask build-plugins` first")
}

/// The routes, as the raw requests a keep-alive connection sends.
fn routes(addr: SocketAddr) -> Vec<(&'static str, Arc<[u8]>)> {
    let flip = r#"{"enabled": false, "by": "bench"}"#;
    let admin = format!(
        "POST /admin/enabled HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {OPERATOR_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{flip}",
        flip.len()
    );
    vec![
        ("GET /", get(addr, "/")),
        ("GET /metrics", get(addr, "/metrics")),
        ("POST /admin/enabled", admin.into_bytes().into()),
        ("POST /alert (cooldown skip)", post_alert(addr, &webhook(1))),
    ]
}

fn main() {
    let duration = run_length(3);
    let runtime = bench_runtime();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::write(plugins.join("restart_container.wasm"), component()).unwrap();
        std::fs::write(plugins.join("restart-crm-api.toml"), manifest_text()).unwrap();
        std::fs::write(plugins.join("misbehave.wasm"), misbehave()).unwrap();
        let mut config = RawConfig {
            audit_path: dir.path().join("audit.jsonl"),
            plugins_dir: plugins.clone(),
            cache_dir: dir.path().join("cache"),
            sandbox: common::sandbox(),
        ..RawConfig::default()
        };
        config.auth.operator_tokens = vec![OPERATOR_TOKEN.into()];
        let slots = config.sandbox.max_concurrent as usize;
        std::fs::write(
            plugins.join("spin.toml"),
            format!(
                "name = \"spin\"\nversion = \"1\"\ncomponent = \"misbehave.wasm\"\n\
                 [match]\nalertnames = [\"Spin\"]\n[capabilities]\ncontainers = []\n\
                 [limits]\ntimeout_ms = 60000\nmax_concurrent = {slots}\n\
                 [cooldown_key]\nlabels = [\"instance\"]\n[config]\nmode = \"loop\"\n"
            ),
        )
        .unwrap();
        let addr = serve(config).await;
        // The crm alert once, so that every later one is a cooldown skip.
        closed_loop(addr, &post_alert(addr, &webhook(1)), 1, Duration::from_millis(50)).await;

        let idle = measure(addr, duration).await;

        let spin = webhook(slots).replace("TcpEndpointDownFast", "Spin");
        let started = Instant::now();
        closed_loop(addr, &post_alert(addr, &spin), 1, Duration::from_millis(1)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let busy = measure(addr, duration).await;
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the plugins' deadline passed before the busy runs ended: lower SECONDS"
        );

        println!(
            "| route | idle p50 | idle p99 | busy ({slots} plugins spinning) p50 | busy p99 | busy / idle p99 | requests idle / busy |"
        );
        println!("|---|---|---|---|---|---|---|");
        for ((route, idle), (_, busy)) in idle.iter().zip(&busy) {
            println!(
                "| {route} | {} | {} | {} | {} | {:.2}x | {} / {} |",
                ms(idle.p50),
                ms(idle.p99),
                ms(busy.p50),
                ms(busy.p99),
                busy.p99.as_secs_f64() / idle.p99.as_secs_f64(),
                idle.requests,
                busy.requests
            );
        }
    });
}

async fn measure(addr: SocketAddr, duration: Duration) -> Vec<(&'static str, common::loadgen::Run)> {
    let mut runs = Vec::new();
    for (route, request) in routes(addr) {
        let run = closed_loop(addr, &request, 1, duration).await;
        assert_eq!(run.errors, 0, "{route} answered other than 200");
        runs.push((route, run));
    }
    runs
}
