//! `cargo bench -p autoheal --bench claims`: what a replica's claim costs
//! per action, against a single host, in one run on a 3-member etcd on
//! loopback (Debian's etcd-server).
//!
//! 1. The claim alone (`Cluster::claim`: one transaction, and a lease grant
//!    when no lease of its length was granted in the last second), against
//!    its floors, one etcd read and one bare etcd write, each `N` times in
//!    sequence.
//! 2. `POST /alert` of one alert that acts (dry-run, fake engine), one
//!    request at a time: a single host, then a replica of the cluster.

#[allow(dead_code)] // each bench uses some of the shared helpers
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autoheal::cluster::Cluster;
use autoheal::cluster::etcd::{EtcdClient, EtcdOptions};
use autoheal::config::RawCluster;
use autoheal::config::RawConfig;
use common::loadgen::{bench_runtime, connect, ms, read_response, serve};
use common::{component, manifest_text};
use tokio::io::AsyncWriteExt;

const N: usize = 2000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Three etcd members on loopback (processes, client URLs, data); killed on drop.
struct Etcd(Vec<Child>, Vec<String>, #[allow(dead_code)] tempfile::TempDir);

impl Etcd {
    fn start() -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("e{i}=http://127.0.0.1:{peer}"))
            .collect();
        let mut children = Vec::new();
        let mut clients = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let client = format!("http://127.0.0.1:{client}");
            let peer = format!("http://127.0.0.1:{peer}");
            children.push(
                Command::new("etcd")
                    .args(["--name", &format!("e{i}"), "--data-dir"])
                    .arg(dir.path().join(format!("e{i}")))
                    .args([
                        "--listen-client-urls",
                        &client,
                        "--advertise-client-urls",
                        &client,
                    ])
                    .args([
                        "--listen-peer-urls",
                        &peer,
                        "--initial-advertise-peer-urls",
                        &peer,
                    ])
                    .args([
                        "--initial-cluster",
                        &initial.join(","),
                        "--initial-cluster-state",
                        "new",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("etcd is installed (apt-get install etcd-server)"),
            );
            clients.push(client);
        }
        Etcd(children, clients, dir)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
}

fn cluster_settings(etcd: &Etcd, replica: &str) -> RawCluster {
    let secret = std::env::temp_dir().join(format!("autoheal-bench-secret-{}", std::process::id()));
    std::fs::write(&secret, "bench-cluster-secret-0123456789abcdef\n").unwrap();
    RawCluster {
        etcd: etcd.1.clone(),
        replica: replica.into(),
        secret_file: secret.display().to_string(),
        ..RawCluster::default()
    }
}

/// A host with the bundled plugin keyed by `instance`, so that every alert
/// below is an action of its own; a replica when `cluster` is set.
async fn server(dir: &std::path::Path, cluster: Option<RawCluster>) -> std::net::SocketAddr {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("restart_container.wasm"), component()).unwrap();
    let manifest = manifest_text()
        .replace("min_uptime_sec = \"60\"", "min_uptime_sec = \"0\"")
        .replace(
            "[config]",
            "max_concurrent = 64\n\n[cooldown_key]\nlabels = [\"instance\"]\n\n[config]",
        );
    std::fs::write(plugins.join("restart-crm-api.toml"), manifest).unwrap();
    let mut config = RawConfig {
        audit_path: dir.join("audit.jsonl"),
        plugins_dir: plugins,
        cache_dir: dir.join("cache"),
        sandbox: common::sandbox(),
        ..RawConfig::default()
    };
    config.max_pending_actions = 100_000;
    config.notify.enabled = false;
    if let Some(cluster) = cluster {
        config.cluster = cluster;
    }
    serve(config).await
}

/// `N` webhooks of one alert each, a new `instance` every time, in sequence.
async fn alerts_in_sequence(addr: std::net::SocketAddr, tag: &str) -> Vec<Duration> {
    let mut stream = connect(addr).await;
    let mut buf = Vec::new();
    let mut samples = Vec::with_capacity(N);
    for i in 0..N {
        let body = format!(
            r#"{{"version":"4","status":"firing","receiver":"autoheal","alerts":[{{"status":"firing","labels":{{"alertname":"TcpEndpointDownFast","service":"crm-api","instance":"{tag}-{i}"}},"annotations":{{"autoheal":"true"}}}}]}}"#
        );
        let request = format!(
            "POST /alert HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let started = Instant::now();
        stream.write_all(request.as_bytes()).await.unwrap();
        assert!(
            read_response(&mut stream, &mut buf).await,
            "a webhook was refused"
        );
        samples.push(started.elapsed());
    }
    samples
}

fn main() {
    let etcd = Etcd::start();
    let runtime = bench_runtime();
    runtime.block_on(async {
        let raw = cluster_settings(&etcd, "bench");
        let settings = raw.validate(0).unwrap().unwrap();
        let cluster = Cluster::connect(settings).await.unwrap();
        // Wait for a leader.
        let ready = Instant::now();
        while cluster.switches().await.is_err() {
            assert!(ready.elapsed() < Duration::from_secs(30), "etcd did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut floor = Vec::with_capacity(N);
        let mut writes = Vec::with_capacity(N);
        let mut claims = Vec::with_capacity(N);
        let raw = EtcdClient::new(EtcdOptions {
            endpoints: etcd.1.clone(),
            connect_timeout: Duration::from_secs(1),
            tls: None,
            user: None,
        })
        .unwrap();
        for i in 0..N {
            let started = Instant::now();
            cluster.switches().await.unwrap();
            floor.push(started.elapsed());
            let started = Instant::now();
            raw.put(format!("/bench/put/{i}"), "x").await.unwrap();
            writes.push(started.elapsed());
            let started = Instant::now();
            let claimed = cluster.claim(&format!("bench|{i}"), "bench", 60).await;
            claimed.unwrap();
            claims.push(started.elapsed());
        }
        let (floor_p50, floor_p99) = percentiles(floor);
        let (write_p50, write_p99) = percentiles(writes);
        let (claim_p50, claim_p99) = percentiles(claims);
        println!("claims: {N} in sequence, 3-member etcd on loopback");
        println!("| | p50 | p99 |");
        println!("|---|---|---|");
        println!(
            "| one etcd read (floor) | {} | {} |",
            ms(floor_p50),
            ms(floor_p99)
        );
        println!(
            "| one etcd write, a bare put (floor) | {} | {} |",
            ms(write_p50),
            ms(write_p99)
        );
        println!(
            "| a claim (transaction; lease shared) | {} | {} |",
            ms(claim_p50),
            ms(claim_p99)
        );
        println!(
            "| ratio claim / read | {:.2} | {:.2} |",
            claim_p50.as_secs_f64() / floor_p50.as_secs_f64(),
            claim_p99.as_secs_f64() / floor_p99.as_secs_f64()
        );
        println!(
            "| ratio claim / write | {:.2} | {:.2} |",
            claim_p50.as_secs_f64() / write_p50.as_secs_f64(),
            claim_p99.as_secs_f64() / write_p99.as_secs_f64()
        );

        let single_dir = tempfile::tempdir().unwrap();
        let single = server(single_dir.path(), None).await;
        let replica_dir = tempfile::tempdir().unwrap();
        let replica = server(replica_dir.path(), Some(cluster_settings(&etcd, "bench-replica"))).await;
        // Warm both (plugin compiled, connections made), then measure.
        alerts_in_sequence(single, "warm").await;
        alerts_in_sequence(replica, "warm").await;
        let (single_p50, single_p99) = percentiles(alerts_in_sequence(single, "run").await);
        let (replica_p50, replica_p99) = percentiles(alerts_in_sequence(replica, "run").await);
        println!();
        println!("POST /alert, one acting alert per request, {N} in sequence");
        println!("| | p50 | p99 |");
        println!("|---|---|---|");
        println!("| single host | {} | {} |", ms(single_p50), ms(single_p99));
        println!(
            "| replica (claim per action) | {} | {} |",
            ms(replica_p50),
            ms(replica_p99)
        );
        println!(
            "| claim's cost per action | {} | {} |",
            ms(replica_p50.saturating_sub(single_p50)),
            ms(replica_p99.saturating_sub(single_p99))
        );
    });
}
