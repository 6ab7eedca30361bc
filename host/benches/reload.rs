//! Hot reload latency, recorded in BENCHMARKS.md: from the moment a new
//! plugin (component + manifest) is in place in the watched directory to the
//! first webhook that is dispatched to it.
//!
//! Each round drops in a new plugin whose component has different bytes
//! (a custom section), so it is compiled, not served from the cache.
//!
//! Run: `cargo xtask build-plugins && cargo bench -p autoheal --bench reload`

#[allow(dead_code)] // each bench uses some of the shared helpers
mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoheal::config::RawConfig;
use autoheal_containers::FakeRuntime;
use autoheal_core::event::{EventBody, WebhookReceived};
use common::{component, manifest_text, with_tag};

const ROUNDS: usize = 30;

/// Writes via a temporary name and a rename, as deploy tools do.
fn put(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        let config = RawConfig {
            audit_path: dir.path().join("audit.jsonl"),
            plugins_dir: plugins.clone(),
            cache_dir: dir.path().join("cache"),
            sandbox: common::sandbox(),
        ..RawConfig::default()
        };
        let host = autoheal::app::start(config.validate().unwrap(), Arc::new(FakeRuntime::new())).await.unwrap();
        let _watch = autoheal::reload::watch(host.clone()).unwrap();
        let remediator = host.remediator.clone();
        let manifest = manifest_text();
        let base = component();

        let mut samples = Vec::with_capacity(ROUNDS);
        for round in 0..ROUNDS {
            let name = format!("bench-{round}");
            let bytes = with_tag(base.clone(), &name);
            // Its own name, component and alert (an `autoheal_action`
            // annotation chooses only among plugins whose [match] accepts it).
            let text: String = manifest
                .replace("name = \"restart-crm-api\"", &format!("name = {name:?}"))
                .replace("restart_container.wasm", &format!("{name}.wasm"))
                .lines()
                .map(|line| match line.starts_with("alertnames = ") {
                    true => format!("alertnames = [\"Bench{round}\"]\n"),
                    false => format!("{line}\n"),
                })
                .collect();
            let alert: Vec<autoheal_core::alert::Alert> = serde_json::from_value(serde_json::json!([{
                "status": "firing",
                "labels": { "alertname": format!("Bench{round}") },
                "annotations": { "autoheal": "true", "autoheal_action": name },
            }]))
            .unwrap();

            let started = Instant::now();
            put(&plugins, &format!("{name}.wasm"), &bytes);
            put(&plugins, &format!("{name}.toml"), text.as_bytes());
            loop {
                let received = EventBody::WebhookReceived(WebhookReceived {
                    alerts: alert.len(),
                    decisions: None,
                    group_key: None,
                    receiver: None,
                    status: None,
                    truncated_alerts: None,
                });
                // The path `POST /alert` takes: recorded durably, then dispatched.
                let decisions = remediator.process_webhook(received, alert.clone()).await.unwrap();
                if decisions[0].decision == autoheal::remediation::Decision::Act {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "plugin {name} never went live: {:?}",
                    decisions[0]
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            samples.push(started.elapsed());
        }
        remediator.drain().await;
        samples.sort();
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        println!(
            "new plugin in place -> first webhook dispatched to it, {ROUNDS} rounds: median {}  p99 {}  min {}  max {}",
            ms(samples[ROUNDS / 2]),
            ms(samples[(ROUNDS * 99 / 100).min(ROUNDS - 1)]),
            ms(samples[0]),
            ms(samples[ROUNDS - 1])
        );
    });
}
