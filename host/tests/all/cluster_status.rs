//! `autoheal status` on a replica, as the real binary, against a host of a
//! real etcd cluster: this replica and etcd's endpoints, the replicas listed
//! with their URLs, who holds a claim; then, etcd stopped, that actions run
//! in dry-run (`cluster_unavailable`) and what is no longer known.
//!
//! Needs Debian's etcd-server (as `cluster.rs`).

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use autoheal::cluster::Claim;
use autoheal::config::RawCluster;

use crate::cluster::{Etcd, cluster_secret_file, replica_handle};
use crate::real::{ServedHost, free_port, http, wait_until};
use crate::support::*;

/// `autoheal status` against `url`, with nothing from the caller's
/// environment; its stdout, the command having succeeded.
async fn status(url: &str) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_autoheal"));
    command
        .env_clear()
        .env("AUTOHEAL_URL", url)
        .env("NO_COLOR", "1")
        .arg("status");
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "autoheal status exited {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Polls `GET /` until `check` finds what it wants in it.
async fn wait_for_status(url: &str, what: &str, check: fn(&serde_json::Value) -> bool) {
    let url = url.to_owned();
    let what = what.to_owned();
    tokio::task::spawn_blocking(move || {
        wait_until(&what, Duration::from_secs(30), || {
            let (_, body) = http(&url, "GET", "/", "").ok()?;
            check(&body).then_some(())
        })
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_replicas_and_claims_then_says_etcd_is_unavailable() {
    let mut etcd = Etcd::start(1);
    let endpoint = etcd.endpoints()[0].clone();
    let port = free_port();
    let here_url = format!("http://127.0.0.1:{port}");
    let host = {
        let (endpoints, here_url) = (etcd.endpoints(), here_url.clone());
        ServedHost::start_on(
            port,
            &[crm_plugin()],
            Arc::new(autoheal_containers::NoEngine),
            move |c| {
                real(c);
                c.public_url = here_url;
                c.cluster = RawCluster {
                    etcd: endpoints,
                    replica: "here".into(),
                    timeout: "1s".into(),
                    secret_file: cluster_secret_file(),
                    ..RawCluster::default()
                };
            },
        )
        .await
    };
    // Another replica, listed at its URL, holding a claim.
    let other = replica_handle(&etcd, "other").await;
    let key = "restart-crm-api|TcpEndpointDownFast";
    let claimed = other.claim(key, "restart-crm-api", 600).await.unwrap();
    assert_eq!(claimed.claim, Claim::Won);
    wait_for_status(&host.url, "this replica to be listed", |body| {
        body["cluster"]["replicas"]
            .as_array()
            .is_some_and(|r| r.iter().any(|m| m["replica"] == "here"))
    })
    .await;
    // Listed on a 10 s lease: registered again just before the command runs.
    other.register("http://10.0.0.2:9009").await.unwrap();

    let text = status(&host.url).await;
    assert!(text.starts_with("autoheal "), "{text}");
    assert!(text.contains(": mode real\n"), "{text}");
    assert!(
        text.contains(&format!("  cluster: replica here, etcd {endpoint}\n")),
        "{text}"
    );
    assert!(text.contains("    etcd available since "), "{text}");
    assert!(text.contains("    replicas (2;"), "{text}");
    assert!(
        text.contains(&format!("      here {here_url} — up, renewed ")) && text.contains("(this replica)\n"),
        "{text}"
    );
    assert!(
        text.contains("      other http://10.0.0.2:9009 — up, renewed "),
        "{text}"
    );
    assert!(text.contains("    claims (1):\n"), "{text}");
    assert!(
        text.contains(&format!(
            "      {key} — held by other (restart-crm-api), runs out in "
        )),
        "{text}"
    );

    // etcd goes away: the replica fails closed and says so.
    etcd.stop_member(0);
    wait_for_status(&host.url, "the cluster to be unavailable", |body| {
        body["cluster"]["available"] == false
    })
    .await;
    let text = status(&host.url).await;
    assert!(text.contains(": mode dry_run (cluster_unavailable)\n"), "{text}");
    assert!(text.contains("    etcd UNAVAILABLE since "), "{text}");
    assert!(
        text.contains("    actions run in dry-run (cluster_unavailable) until etcd answers"),
        "{text}"
    );
    assert!(
        text.contains("    replicas and claims: unknown while etcd does not answer\n"),
        "{text}"
    );
    assert!(!text.contains("held by other"), "{text}");
}
