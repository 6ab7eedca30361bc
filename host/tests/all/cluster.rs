//! Replicas on a real etcd: a 3-member etcd cluster and 3 autoheal
//! processes on loopback ports, restarting real Podman containers on two
//! engines (two Podman services, each with storage of its own: the default
//! engine and `[engines.b]`). Restarts are counted from each Podman's own
//! event log, not from our audit trails.
//!
//! Needs Debian's etcd-server besides the packages `real.rs` needs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use std::sync::Arc;

use autoheal::cluster::etcd::{EtcdClient, EtcdOptions};
use autoheal::cluster::{Claim, Cluster};
use autoheal::config::RawCluster;
use autoheal::switches::{SwitchState, Switches};
use autoheal_sandbox::breaker::{Admission, Joining, Refused, RestartBreaker};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::admin::{NeverReal, make_safe, race_the_halves};
use crate::real::{Podman, ServedHost, free_port, http, unique, wait_until};
use crate::support::*;

/// One etcd member: its process and how to start it again.
struct Member {
    name: String,
    client: String,
    peer: String,
    dir: PathBuf,
    process: Option<Child>,
}

/// A 3-member etcd cluster on loopback.
pub(crate) struct Etcd {
    members: Vec<Member>,
    initial: String,
    _dir: TempDir,
}

impl Etcd {
    pub(crate) fn start(size: usize) -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let members: Vec<Member> = (0..size)
            .map(|i| Member {
                name: format!("e{i}"),
                client: format!("http://127.0.0.1:{}", free_port()),
                peer: format!("http://127.0.0.1:{}", free_port()),
                dir: dir.path().join(format!("e{i}")),
                process: None,
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut etcd = Etcd {
            members,
            initial,
            _dir: dir,
        };
        for i in 0..size {
            etcd.start_member(i, "new");
        }
        etcd.wait_healthy();
        etcd
    }

    fn start_member(&mut self, i: usize, state: &str) {
        let initial = self.initial.clone();
        let member = &mut self.members[i];
        let process = Command::new("etcd")
            .args(["--name", &member.name, "--data-dir"])
            .arg(&member.dir)
            .args(["--listen-client-urls", &member.client])
            .args(["--advertise-client-urls", &member.client])
            .args(["--listen-peer-urls", &member.peer])
            .args(["--initial-advertise-peer-urls", &member.peer])
            .args(["--initial-cluster", &initial])
            .args(["--initial-cluster-state", state])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd is installed (apt-get install etcd-server)");
        member.process = Some(process);
    }

    pub(crate) fn stop_member(&mut self, i: usize) {
        if let Some(mut process) = self.members[i].process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    pub(crate) fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client.clone()).collect()
    }

    /// A plain client of every member, as anyone with access to etcd has.
    fn client(&self) -> EtcdClient {
        EtcdClient::new(EtcdOptions {
            endpoints: self.endpoints(),
            connect_timeout: Duration::from_secs(1),
            tls: None,
            user: None,
        })
        .unwrap()
    }

    /// Every running member answers `/health` with a leader.
    fn wait_healthy(&self) {
        for member in self.members.iter().filter(|m| m.process.is_some()) {
            wait_until(
                &format!("etcd member {} to be healthy", member.name),
                Duration::from_secs(30),
                || match http(&member.client, "GET", "/health", "") {
                    Ok((200, body)) if body["health"] == "true" => Some(()),
                    _ => None,
                },
            );
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.stop_member(i);
        }
    }
}

/// One autoheal process, a replica of the cluster.
struct Replica {
    name: String,
    url: String,
    process: Option<Child>,
}

impl Replica {
    fn start(name: &str, root: &Path, etcd: &[String], engines: [&Path; 2], manifest: &str) -> Replica {
        let dir = root.join(name);
        stage_plugins(
            &dir,
            &["restart_container"],
            &[("restart.toml", manifest.to_owned())],
        );
        let endpoints: Vec<String> = etcd.iter().map(|e| format!("{e:?}")).collect();
        std::fs::write(
            dir.join("autoheal.toml"),
            format!(
                "[cluster]\netcd = [{}]\nreplica = {name:?}\ntimeout = \"1s\"\nsecret_file = {:?}\n\
                 [notify]\nenabled = false\n[engines.b]\naddress = \"unix://{}\"\n",
                endpoints.join(", "),
                cluster_secret_file(),
                engines[1].display()
            ),
        )
        .unwrap();
        let port = free_port();
        let process = serve_command(
            &dir,
            &format!("127.0.0.1:{port}"),
            &shared_cache_dir(),
            engines[0],
        )
        .env("AUTOHEAL_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .spawn()
        .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        wait_until(
            &format!("replica {name} to serve"),
            Duration::from_secs(60),
            || matches!(http(&url, "GET", "/", ""), Ok((200, _))).then_some(()),
        );
        Replica {
            name: name.to_owned(),
            url,
            process: Some(process),
        }
    }

    fn kill_nine(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    fn status(&self) -> Value {
        http(&self.url, "GET", "/", "").unwrap().1
    }

    fn audit(&self, kinds: &str) -> Vec<Value> {
        let (status, body) = http(&self.url, "GET", &format!("/audit?n=5000&kind={kinds}"), "").unwrap();
        assert_eq!(status, 200, "{body}");
        body["events"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until no action of this replica is still running.
    fn settled(&self) {
        wait_until(
            &format!("{}'s actions to end", self.name),
            Duration::from_secs(120),
            || {
                let started = self.audit("action_started").len();
                let ended = self.audit("action_ok,action_fail,action_dry_run").len();
                (started == ended).then_some(())
            },
        );
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill_nine();
    }
}

/// The rig: etcd, two Podman engines with `containers` busybox containers
/// between them (even ones on the default engine, odd ones on `b`), 3 replicas.
struct Rig {
    etcd: Etcd,
    engines: [Podman; 2],
    containers: Vec<String>,
    replicas: Vec<Replica>,
    since: String,
    _dir: TempDir,
}

impl Rig {
    fn start(containers: usize) -> Rig {
        Self::start_with(containers, "")
    }

    /// As [`Rig::start`], with more manifest tables (e.g. `[policy]`).
    fn start_with(containers: usize, tables: &str) -> Rig {
        Self::start_keyed(containers, tables, &["container"])
    }

    /// As [`Rig::start_with`], the plugin's cooldown (and claim) keyed by
    /// `cooldown_labels`.
    fn start_keyed(containers: usize, tables: &str, cooldown_labels: &[&str]) -> Rig {
        let etcd = Etcd::start(3);
        let engines = [Podman::start(), Podman::start_isolated()];
        let containers: Vec<String> = (0..containers).map(|_| unique("replica")).collect();
        for (i, name) in containers.iter().enumerate() {
            engines[i % 2].run_httpd(name, free_port());
        }
        // The manifest says which engine each container is on; alerts name
        // the bare container.
        let allowed: Vec<String> = containers
            .iter()
            .enumerate()
            .map(|(i, name)| {
                if i % 2 == 0 {
                    name.clone()
                } else {
                    format!("b/{name}")
                }
            })
            .collect();
        let names: Vec<&str> = allowed.iter().map(String::as_str).collect();
        let manifest = manifest(
            "restart-named",
            "restart_container.wasm",
            &["ServiceDown"],
            &names,
            &format!(
                "[cooldown_key]\nlabels = {cooldown_labels:?}\n\
                 [limits]\ntimeout_ms = 20000\ncooldown = \"10m\"\nstop_timeout_sec = 1\nmax_concurrent = 32\n\
                 {tables}\n[config]\ncontainer_label = \"container\"\nmin_uptime_sec = \"0\""
            ),
        );
        let dir = tempfile::tempdir().unwrap();
        let since = chrono::Utc::now().timestamp().to_string();
        let replicas = (0..3)
            .map(|i| {
                let sockets = [engines[0].socket.as_path(), engines[1].socket.as_path()];
                Replica::start(
                    &format!("r{i}"),
                    dir.path(),
                    &etcd.endpoints(),
                    sockets,
                    &manifest,
                )
            })
            .collect();
        Rig {
            etcd,
            engines,
            containers,
            replicas,
            since,
            _dir: dir,
        }
    }

    /// The alert about container `i`, posted to every live replica at once.
    fn post_everywhere(&self, i: usize) {
        let body = self.webhook(i, &[]);
        let posts: Vec<(&Replica, String)> = self.live().map(|r| (r, body.clone())).collect();
        Self::post_at_once(posts);
    }

    /// A webhook of the alert about container `i`, with more `labels`.
    fn webhook(&self, i: usize, labels: &[(&str, &str)]) -> String {
        let mut alert_labels = json!({"alertname": "ServiceDown", "container": self.containers[i]});
        for (name, value) in labels {
            alert_labels[*name] = json!(value);
        }
        json!({
            "version": "4", "status": "firing", "receiver": "autoheal",
            "alerts": [{
                "status": "firing",
                "labels": alert_labels,
                "annotations": {"autoheal": "true"},
                "startsAt": "2026-12-06T10:00:00Z"
            }]
        })
        .to_string()
    }

    /// Each body posted to its replica, all at once; each answered 200.
    fn post_at_once(posts: Vec<(&Replica, String)>) {
        std::thread::scope(|scope| {
            for (replica, body) in posts {
                scope.spawn(move || {
                    let (status, reply) = http(&replica.url, "POST", "/alert", &body).unwrap();
                    assert_eq!(status, 200, "{}: {reply}", replica.name);
                });
            }
        });
    }

    fn live(&self) -> impl Iterator<Item = &Replica> {
        self.replicas.iter().filter(|r| r.process.is_some())
    }

    /// Each Podman's own count of restarts per container since the rig started.
    fn restarts(&self) -> BTreeMap<String, usize> {
        let mut counts: BTreeMap<String, usize> = self.containers.iter().map(|c| (c.clone(), 0)).collect();
        for engine in &self.engines {
            for name in engine.restarted_since(&self.since) {
                if let Some(count) = counts.get_mut(&name) {
                    *count += 1;
                }
            }
        }
        counts
    }

    fn count(&self, kind: &str, pick: impl Fn(&Value) -> bool) -> usize {
        self.live()
            .map(|r| r.audit(kind).iter().filter(|e| pick(e)).count())
            .sum()
    }
}

fn operator(url: &str, path: &str, body: &str) -> (u16, Value) {
    let bearer = format!("Bearer {OPERATOR_TOKEN}");
    crate::real::http_with(url, "POST", path, &[("Authorization", &bearer)], body).unwrap()
}

#[test]
fn three_replicas_restart_each_container_once_and_share_the_kill_switch() {
    // The 21st container is kept for after the kill switch.
    let rig = Rig::start(21);
    for _round in 0..5 {
        for i in 0..20 {
            rig.post_everywhere(i);
        }
    }
    for replica in rig.live() {
        replica.settled();
    }
    let restarts = rig.restarts();
    assert!(
        rig.containers[..20].iter().all(|c| restarts[c] == 1),
        "each container restarted exactly once: {restarts:#?}"
    );
    assert_eq!(
        rig.count("action_ok", |_| true),
        20,
        "20 real actions across the replicas"
    );
    let claimed = rig.count("decision_skip", |e| e["reason"] == "claimed");
    assert!(
        claimed >= 40,
        "{claimed} claimed skips; the losers of the first round alone make 40"
    );
    for replica in rig.live() {
        for event in replica.audit("decision_skip,action_started,action_ok") {
            assert_eq!(event["replica"], replica.name.as_str(), "{event}");
        }
        let holders = replica.audit("decision_skip");
        for skip in holders.iter().filter(|e| e["reason"] == "claimed") {
            let by = skip["claimed_by"].as_str().unwrap();
            assert!(by != replica.name && by.starts_with('r'), "{skip}");
        }
        assert_eq!(replica.status()["cluster"]["available"], true);
    }
    // The whole cluster's trail from one replica, merged by time.
    let (status, merged) = http(
        &rig.replicas[0].url,
        "GET",
        "/audit?cluster=true&kind=action_ok&n=100",
        "",
    )
    .unwrap();
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["count"], 20, "{merged}");
    let from: std::collections::BTreeSet<&str> = merged["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["replica"].as_str().unwrap())
        .collect();
    assert!(
        from.len() >= 2,
        "the actions were spread over the replicas: {from:?}"
    );
    let read: Vec<&str> = merged["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["count"].is_number())
        .map(|r| r["replica"].as_str().unwrap())
        .collect();
    assert_eq!(read.len(), 3, "{merged}");
    let times: Vec<f64> = merged["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ts"].as_f64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "merged by time");
    let listed = rig.replicas[1].status()["cluster"]["replicas"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(listed, 3);
    let (_, metrics) = http(&rig.replicas[0].url, "GET", "/metrics", "").unwrap();
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(metrics.contains("autoheal_cluster_available 1"), "{metrics}");
    assert!(sample(&metrics, "autoheal_claims_total{outcome=\"held\"}") >= 1.0);

    // The kill switch flipped on one replica: no replica acts for real.
    let (status, reply) = operator(
        &rig.replicas[0].url,
        "/admin/enabled",
        r#"{"enabled":false,"by":"test"}"#,
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["cluster"]["shared"], true, "{reply}");
    let body = |container: &str| {
        json!({
            "version": "4", "status": "firing", "receiver": "autoheal",
            "alerts": [{"status": "firing",
                "labels": {"alertname": "ServiceDown", "container": container},
                "annotations": {"autoheal": "true"}}]
        })
        .to_string()
    };
    // At once, before the others' once-a-second copy: the claim reads the switch.
    for replica in &rig.replicas[1..] {
        let (status, reply) = http(&replica.url, "POST", "/alert", &body(&rig.containers[20])).unwrap();
        assert_eq!(status, 200, "{reply}");
    }
    for replica in rig.live() {
        replica.settled();
    }
    assert_eq!(
        rig.restarts()[&rig.containers[20]],
        0,
        "no restart after the kill switch"
    );
    let switched = rig.count("action_started", |e| e["dry_run_reason"] == "disabled");
    assert_eq!(switched, 1, "the one claimant ran it in dry-run");
    for replica in &rig.replicas[1..] {
        wait_until(
            &format!("{} to show the flip", replica.name),
            Duration::from_secs(10),
            || (replica.status()["enabled"] == false).then_some(()),
        );
        // The adopted flip is an event there, and the gauge follows it.
        wait_until(
            &format!("{}'s autoheal_enabled to follow the flip", replica.name),
            Duration::from_secs(10),
            || {
                let (_, metrics) = http(&replica.url, "GET", "/metrics", "").ok()?;
                metrics.as_str()?.contains("autoheal_enabled 0").then_some(())
            },
        );
    }
}

#[test]
fn a_killed_replica_and_a_stopped_etcd_member_restart_nothing_twice() {
    let mut rig = Rig::start(20);
    for i in 0..10 {
        rig.post_everywhere(i);
    }
    // Halfway: one replica dies mid-action, one etcd member goes away.
    rig.replicas[0].kill_nine();
    rig.etcd.stop_member(2);
    for _round in 0..5 {
        for i in 0..rig.containers.len() {
            rig.post_everywhere(i);
        }
    }
    for replica in rig.live() {
        replica.settled();
    }
    let restarts = rig.restarts();
    assert!(
        restarts.values().all(|&n| n <= 1),
        "no container restarted twice inside its cooldown: {restarts:#?}"
    );
    // The second half was decided by the survivors alone, on a cluster with
    // quorum: each of those containers was restarted once.
    let second_half: Vec<_> = rig.containers[10..].iter().map(|c| restarts[c]).collect();
    assert!(
        second_half.iter().all(|&n| n == 1),
        "{restarts:#?} {:#?}",
        rig.replicas[1]
            .audit("action_fail,host_warning,decision_skip")
            .iter()
            .rev()
            .take(6)
            .collect::<Vec<_>>()
    );
}

#[test]
fn without_quorum_nothing_restarts_and_the_alerts_are_acted_on_by_themselves_when_it_is_back() {
    let mut rig = Rig::start(4);
    rig.etcd.stop_member(1);
    rig.etcd.stop_member(2);
    let lost = std::time::Instant::now();
    for i in 0..2 {
        rig.post_everywhere(i);
    }
    for replica in rig.live() {
        replica.settled();
    }
    assert!(rig.restarts().values().all(|&n| n == 0), "{:#?}", rig.restarts());
    let dry_runs = || rig.count("action_started", |e| e["dry_run_reason"] == "cluster_unavailable");
    let unavailable = dry_runs();
    assert!(
        unavailable >= 2,
        "{unavailable} actions recorded as cluster_unavailable"
    );
    // Each replica that ran one in dry-run kept its alert to try again.
    let kept = rig.count("alert_deferred", |e| {
        e["retry"]["reason"] == "cluster_unavailable" && e["retry"]["attempt"] == 1
    });
    assert_eq!(kept, unavailable, "one kept alert per forced dry-run");
    for replica in rig.live() {
        let status = replica.status();
        assert_eq!(status["cluster"]["available"], false, "{status}");
        assert_eq!(status["dry_run_reason"], "cluster_unavailable", "{status}");
        let (_, metrics) = http(&replica.url, "GET", "/metrics", "").unwrap();
        assert!(metrics.as_str().unwrap().contains("autoheal_cluster_available 0"));
        let held: Vec<&str> = status["deferred"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["alertname"].as_str().unwrap())
            .collect();
        assert!(held.iter().all(|a| *a == "ServiceDown"), "{status}");
    }
    // Alertmanager sending an alert again meanwhile changes nothing: it is kept already.
    rig.post_everywhere(0);
    for replica in rig.live() {
        replica.settled();
    }
    assert_eq!(dry_runs(), unavailable, "a re-sent copy ran nothing");

    // The outage lasts 30 s; nobody sends the alerts again after it.
    std::thread::sleep(Duration::from_secs(30).saturating_sub(lost.elapsed()));
    rig.etcd.start_member(1, "existing");
    rig.etcd.start_member(2, "existing");
    rig.etcd.wait_healthy();
    let back = std::time::Instant::now();
    wait_until(
        "the kept alerts to be acted on once etcd is back",
        Duration::from_secs(30),
        || {
            let restarts = rig.restarts();
            (restarts[&rig.containers[0]] == 1 && restarts[&rig.containers[1]] == 1).then_some(())
        },
    );
    eprintln!(
        "restarted {:.1} s after etcd's quorum was back",
        back.elapsed().as_secs_f64()
    );
    // A replica whose first try after the return still found etcd settling
    // keeps the alert again and decides it at its next tick: another holds
    // the claim by then.
    for replica in rig.live() {
        wait_until(
            &format!("{} to keep nothing any more", replica.name),
            Duration::from_secs(30),
            || replica.status()["deferred"].as_array()?.is_empty().then_some(()),
        );
        replica.settled();
    }
    let real = rig.count("action_started", |e| e["mode"] == "real");
    assert_eq!(real, 2, "one real action per alert, on one replica");
    let due = rig.count("deferred_due", |_| true);
    assert!(due >= 2, "the kept alerts were decided again by the host ({due})");
    // The same alerts again, and two new ones: the first two are in their cooldown.
    for i in 0..4 {
        rig.post_everywhere(i);
    }
    for replica in rig.live() {
        replica.settled();
    }
    let restarts = rig.restarts();
    assert!(restarts.values().all(|&n| n == 1), "{restarts:#?}");
    let warnings = rig.count("host_warning", |e| e["warning"] == "cluster_available");
    assert!(warnings >= 3, "each replica recorded the cluster's return");
}

/// One outage seen by two alerts with different cooldown keys (two
/// probes of one container), each taken by a different replica at the same
/// moment: one restart; the other replica's joins it (the target cooldown,
/// counted in etcd by compare-and-swap).
#[test]
fn one_container_alerted_twice_on_two_replicas_at_once_is_restarted_once() {
    let rig = Rig::start_keyed(1, "", &["container", "probe"]);
    for round in 0..3 {
        let (r0, r1) = (&rig.replicas[0], &rig.replicas[1]);
        let probe = |kind: &str| format!("{kind}-{round}");
        let posts = vec![
            (r0, rig.webhook(0, &[("probe", &probe("http"))])),
            (r1, rig.webhook(0, &[("probe", &probe("scrape"))])),
        ];
        Rig::post_at_once(posts);
        for replica in rig.live() {
            replica.settled();
        }
        // Every restart request so far, on every replica.
        let outcomes: Vec<String> = rig
            .live()
            .flat_map(|r| r.audit("action_ok,action_fail"))
            .flat_map(|e| e["calls"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["capability"] == "containers.restart")
            .map(|c| c["outcome"].as_str().unwrap_or_default().to_owned())
            .collect();
        let count = |outcome: &str| outcomes.iter().filter(|o| *o == outcome).count();
        // Later rounds (stale repeats, other probes) fall within the target
        // cooldown of the first restart: they join it too.
        assert_eq!(count("ok"), 1, "round {round}: {outcomes:?}");
        assert_eq!(count("joined"), 2 * round + 1, "round {round}: {outcomes:?}");
    }
    assert_eq!(rig.restarts()[&rig.containers[0]], 1, "Podman saw one restart");
}

/// The cluster secret every replica of these tests shares.
pub(crate) const CLUSTER_SECRET: &str = "test-cluster-secret-0123456789abcdef";

/// A file holding [`CLUSTER_SECRET`], for `[cluster] secret_file`.
pub(crate) fn cluster_secret_file() -> String {
    secret_file_with(CLUSTER_SECRET)
}

/// A file (living as long as the test process) holding `secret`.
fn secret_file_with(secret: &str) -> String {
    static DIR: std::sync::OnceLock<TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    let path = dir.path().join(format!("secret-{}", secret.len()));
    if !path.exists() {
        std::fs::write(&path, format!("{secret}\n")).unwrap();
    }
    path.display().to_string()
}

/// `[cluster]` for replica `name` on `etcd`, with the shared secret.
pub(crate) fn raw_cluster(etcd: &Etcd, name: &str) -> RawCluster {
    RawCluster {
        etcd: etcd.endpoints(),
        replica: name.into(),
        secret_file: cluster_secret_file(),
        ..RawCluster::default()
    }
}

/// A handle on `etcd` as replica `name`, once the cluster has a leader.
pub(crate) async fn replica_handle(etcd: &Etcd, name: &str) -> Arc<Cluster> {
    handle_of(raw_cluster(etcd, name)).await
}

/// A handle on the cluster of `raw`, once it has a leader.
async fn handle_of(raw: RawCluster) -> Arc<Cluster> {
    let cluster = Cluster::connect(raw.validate(0).unwrap().unwrap()).await.unwrap();
    for _ in 0..100 {
        if cluster.switches().await.is_ok() {
            return Arc::new(cluster);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("etcd did not answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_one_replicas_until_its_lease_runs_out() {
    let etcd = Etcd::start(1);
    let (a, b) = (replica_handle(&etcd, "a").await, replica_handle(&etcd, "b").await);
    let won = a.claim("p|Alert|x=1", "p", 2).await.unwrap();
    assert_eq!(won.claim, Claim::Won);
    let held = b.claim("p|Alert|x=1", "p", 2).await.unwrap();
    assert_eq!(held.claim, Claim::Held { by: "a".into() });
    // Its own claim, asked again (an approved action), is held by itself.
    assert_eq!(
        a.claim("p|Alert|x=1", "p", 2).await.unwrap().claim,
        Claim::Held { by: "a".into() }
    );
    // Another key is another claim.
    assert_eq!(b.claim("p|Alert|x=2", "p", 2).await.unwrap().claim, Claim::Won);
    // The lease is the cooldown: once it runs out, the next replica wins.
    let mut taken = false;
    for _ in 0..80 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if b.claim("p|Alert|x=1", "p", 60).await.unwrap().claim == Claim::Won {
            taken = true;
            break;
        }
    }
    assert!(taken, "the claim outlived its 2 s lease");
    // The switches ride along with every claim.
    a.set_switches(SwitchState {
        enabled: false,
        dry_run: false,
    })
    .await
    .unwrap();
    let seen = b.claim("p|Alert|x=3", "p", 2).await.unwrap();
    assert_eq!(
        seen.switches,
        Some(SwitchState {
            enabled: false,
            dry_run: false
        })
    );
    // A seed does not overwrite switches a replica already wrote.
    let seeded = b
        .seed_switches(SwitchState {
            enabled: true,
            dry_run: true,
        })
        .await
        .unwrap();
    assert_eq!(
        seeded,
        SwitchState {
            enabled: false,
            dry_run: false
        }
    );
}

/// A replica whose webhook takes no credentials never reaches real mode:
/// not by adopting the cluster's switches while another replica keeps
/// writing real mode into etcd, not by its own operators' halves racing
/// those adoptions (one check, under the lock that applies a change, for
/// both), and it starts again on what it saved while the cluster still
/// says real.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_an_open_webhook_never_adopts_or_makes_real_mode() {
    let etcd = Etcd::start(1);
    let other = replica_handle(&etcd, "other").await;
    let endpoints = etcd.endpoints();
    let open = ServedHost::start(
        &[crm_plugin()],
        Arc::new(autoheal_containers::NoEngine),
        move |c| {
            c.auth.webhook_tokens.clear();
            c.cluster = RawCluster {
                etcd: endpoints,
                replica: "open".into(),
                secret_file: cluster_secret_file(),
                ..RawCluster::default()
            };
        },
    )
    .await;
    let saved = Switches::path_for(&open.host.config.audit_path);
    let watcher = NeverReal::watch(open.host.switches.clone(), saved);
    let real = SwitchState {
        enabled: true,
        dry_run: false,
    };
    let writer = {
        let other = other.clone();
        tokio::spawn(async move {
            loop {
                other.set_switches(real).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    for _ in 0..4 {
        make_safe(&open.url).await;
        race_the_halves(&open.url, 6).await;
        // Past a follower's tick: it reads real mode and may not adopt it.
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    writer.abort();
    watcher.stop();
    let changes = open.audit("mode_changed").await;
    assert!(changes.iter().all(|e| e["mode"] == "dry_run"), "{changes:#?}");

    // The cluster says real as this replica joins again: it starts, and
    // keeps its own switches.
    other.set_switches(real).await.unwrap();
    let open = open.restart().await;
    let started = open.audit("host_started").await;
    assert_eq!(started.last().unwrap()["mode"], "dry_run", "{started:#?}");
    assert_ne!(open.host.switches.state(), real);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_counts_every_replicas_restarts_and_refuses_without_the_cluster() {
    let mut etcd = Etcd::start(1);
    let (a, b) = (replica_handle(&etcd, "a").await, replica_handle(&etcd, "b").await);
    let window = Duration::from_secs(3600);
    let on_a = RestartBreaker::new(2, window).shared_with(a.clone());
    let on_b = RestartBreaker::new(2, window).shared_with(b.clone());
    on_a.admit("edge/api").await.unwrap();
    on_b.admit("edge/api").await.unwrap();
    // Each replica made one restart; together they are at the limit.
    let open = on_a.admit("edge/api").await.unwrap_err();
    assert!(
        matches!(open, Refused::Open(ref o) if o.restarts == 2),
        "{open:?}"
    );
    assert!(open.to_string().starts_with("circuit_open"), "{open}");
    // What `GET /` shows on b: the cluster's count, not only b's restart.
    let shown = on_b.usage(true).await;
    assert_eq!(
        (shown.source, shown.shared_error.as_deref()),
        ("cluster", None),
        "{shown:?}"
    );
    let api = shown
        .containers
        .iter()
        .find(|c| c.container == "edge/api")
        .unwrap();
    assert_eq!((api.spent, api.allowed, api.open), (2, 2, true), "{shown:?}");
    assert!(
        api.frees_in_sec > 3590.0 && api.frees_in_sec <= 3600.0,
        "{shown:?}"
    );
    // Without asking etcd (it does not answer, say): b's own, and why.
    let local = on_b.usage(false).await;
    assert_eq!(local.source, "local");
    assert!(local.shared_error.is_some(), "{local:?}");
    assert_eq!(local.containers[0].spent, 1, "{local:?}");
    // Per engine and container: the default engine's `api` is another one.
    on_b.admit("api").await.unwrap();
    // Both at once for the last place of a fresh container: one wins.
    let (first, second) = tokio::join!(on_a.admit("db"), on_b.admit("db"));
    assert!(first.is_ok() && second.is_ok(), "two places: both fit");
    let (third, fourth) = tokio::join!(on_a.admit("db"), on_b.admit("db"));
    assert!(third.is_err() && fourth.is_err(), "{third:?} {fourth:?}");
    // One fault seen on two replicas: the second restart, within the
    // target cooldown, joins the first and counts nowhere.
    let for_alert = |alert: &str| Joining {
        within: Duration::from_secs(60),
        alert: alert.into(),
    };
    let first = on_a.admit_or_join("web", &for_alert("probe")).await.unwrap();
    assert!(matches!(first, Admission::Restart { .. }), "{first:?}");
    let second = on_b.admit_or_join("web", &for_alert("scrape")).await.unwrap();
    assert!(matches!(second, Admission::Join { .. }), "{second:?}");
    on_b.admit("web").await.unwrap();
    let full = on_a.admit("web").await.unwrap_err();
    assert!(
        matches!(full, Refused::Open(ref o) if o.restarts == 2),
        "{full:?}"
    );
    // No cluster, no restart.
    etcd.stop_member(0);
    let unavailable = on_a.admit("cache").await.unwrap_err();
    assert!(matches!(unavailable, Refused::Unavailable(_)), "{unavailable:?}");
    assert!(!a.is_available());
    let shown = on_a.usage(true).await;
    assert_eq!(shown.source, "local", "{shown:?}");
    assert!(shown.shared_error.is_some(), "{shown:?}");
}

#[test]
fn an_approval_waits_on_one_replica_and_is_answered_from_another() {
    let rig = Rig::start_with(2, "[policy]\napproval = \"required\"");
    rig.post_everywhere(0);
    // Listed by every replica, the owner named.
    let listed = |replica: &Replica| {
        let (_, body) = http(&replica.url, "GET", "/approvals", "").unwrap();
        body["pending"].as_array().cloned().unwrap_or_default()
    };
    let pending = wait_until("the approval on every replica", Duration::from_secs(20), || {
        let all: Vec<Vec<Value>> = rig.replicas.iter().map(listed).collect();
        all.iter().all(|p| p.len() == 1).then(|| all[0][0].clone())
    });
    let (id, owner) = (
        pending["approval"].as_str().unwrap(),
        pending["replica"].as_str().unwrap(),
    );
    assert_eq!(rig.count("approval_requested", |_| true), 1, "one replica asked");
    assert_eq!(
        rig.restarts()[&rig.containers[0]],
        0,
        "nothing runs before the answer"
    );
    // Approved on a replica it does not wait on: forwarded, applied by its owner.
    let other = rig.replicas.iter().find(|r| r.name != owner).unwrap();
    let path = format!("/approvals/{id}/approve");
    let (status, reply) = operator(&other.url, &path, r#"{"by":"alice"}"#);
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["replica"], owner, "{reply}");
    let granted = wait_until("the owner to apply the answer", Duration::from_secs(20), || {
        let owner = rig.replicas.iter().find(|r| r.name == owner).unwrap();
        owner.audit("approval_granted").into_iter().next()
    });
    assert_eq!(
        (&granted["by"], &granted["by_kind"], &granted["by_comment"]),
        (
            &json!("operator"),
            &json!("shared_token"),
            &json!(format!("alice (via {})", other.name))
        ),
        "{granted}"
    );
    wait_until("the restart", Duration::from_secs(30), || {
        (rig.restarts()[&rig.containers[0]] == 1).then_some(())
    });
    // Answered: gone from every list, and a second answer is refused.
    wait_until(
        "the approval to leave every list",
        Duration::from_secs(10),
        || rig.replicas.iter().all(|r| listed(r).is_empty()).then_some(()),
    );
    let (status, reply) = operator(&other.url, &path, r#"{"by":"bob"}"#);
    assert_eq!(status, 404, "{reply}");
    for replica in rig.live() {
        replica.settled();
    }
    assert_eq!(rig.restarts()[&rig.containers[0]], 1, "{:#?}", rig.restarts());
}

#[test]
fn a_pause_made_on_one_replica_stops_the_others_and_a_resume_on_any_ends_it() {
    let rig = Rig::start(1);
    let (a, b) = (&rig.replicas[0], &rig.replicas[1]);
    let (status, pause) = operator(
        &a.url,
        "/pauses",
        r#"{"duration":"1h","reason":"release 4.2","by":"alice"}"#,
    );
    assert_eq!(status, 200, "{pause}");
    let id = pause["id"].as_str().unwrap().to_owned();
    let listed = |replica: &Replica| {
        let (_, body) = http(&replica.url, "GET", "/pauses", "").unwrap();
        body["pauses"].as_array().cloned().unwrap_or_default()
    };
    wait_until(
        "every replica to follow the pause",
        Duration::from_secs(20),
        || rig.replicas.iter().all(|r| listed(r).len() == 1).then_some(()),
    );
    let adopted = b.audit("pause_started").remove(0);
    assert_eq!(
        (
            &adopted["pause_id"],
            &adopted["shared_from"],
            &adopted["by"],
            &adopted["by_comment"]
        ),
        (&json!(id), &json!(a.name), &json!("operator"), &json!("alice")),
        "{adopted}"
    );
    // Sent to replica B only: B skips it, saying which pause (made on A).
    let body = json!({"version": "4", "status": "firing", "receiver": "autoheal", "alerts": [{
        "status": "firing",
        "labels": {"alertname": "ServiceDown", "container": rig.containers[0]},
        "annotations": {"autoheal": "true"}}]})
    .to_string();
    let (status, reply) = http(&b.url, "POST", "/alert", &body).unwrap();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["decisions"][0]["reason"], "paused", "{reply}");
    assert!(
        reply["decisions"][0]["detail"].as_str().unwrap().contains(&id),
        "{reply}"
    );

    // Resumed on B: ended on A too, saying who.
    let bearer = format!("Bearer {OPERATOR_TOKEN}");
    let (status, reply) = crate::real::http_with(
        &b.url,
        "DELETE",
        &format!("/pauses/{id}"),
        &[("Authorization", &bearer)],
        r#"{"by":"bob"}"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{reply}");
    let ended = wait_until("replica A to end the pause", Duration::from_secs(20), || {
        a.audit("pause_ended").into_iter().next()
    });
    assert_eq!(
        (&ended["pause_id"], &ended["why"], &ended["by"]),
        (&json!(id), &json!("resumed"), &json!("operator")),
        "{ended}"
    );
    wait_until("every replica to drop the pause", Duration::from_secs(20), || {
        rig.replicas.iter().all(|r| listed(r).is_empty()).then_some(())
    });
    // The skip started no cooldown and took no claim: the alert acts now, once.
    rig.post_everywhere(0);
    wait_until("the restart", Duration::from_secs(60), || {
        (rig.restarts()[&rig.containers[0]] == 1).then_some(())
    });
    for replica in rig.live() {
        replica.settled();
    }
    assert_eq!(rig.restarts()[&rig.containers[0]], 1, "{:#?}", rig.restarts());
}

#[test]
fn the_console_shows_the_cluster_and_every_replicas_trail() {
    let rig = Rig::start(2);
    rig.post_everywhere(0);
    rig.post_everywhere(1);
    for replica in rig.live() {
        replica.settled();
    }
    let browser = crate::console::Browser::start();
    browser.goto(&format!("{}/console", rig.replicas[0].url));
    let cluster = browser.wait_for(
        "the cluster in the header",
        Duration::from_secs(20),
        "const c = document.querySelector('#cluster');
         const links = [...c.querySelectorAll('a.replica')].map((a) => a.dataset.replica);
         return !document.querySelector('#cluster-fact').hidden && c.dataset.available === 'true'
             && links.length === 3 && { text: c.textContent, links };",
    );
    assert!(cluster["text"].as_str().unwrap().contains("r0"), "{cluster}");
    // Only this replica's rows until the box is ticked; then every replica's.
    browser.click("#whole-cluster");
    let rows = browser.wait_for(
        "rows of every replica",
        Duration::from_secs(20),
        "const names = new Set([...document.querySelectorAll('#stream .event .replica')].map((r) => r.textContent));
         return names.size === 3 && [...names].sort();",
    );
    assert_eq!(rows, json!(["r0", "r1", "r2"]));
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`.
pub(crate) fn certificates(dir: &Path) {
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &key,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                "/CN=autoheal-test-ca",
            ],
        ]
        .concat(),
    );
    for (name, usage) in [
        (
            "server",
            // clientAuth too: etcd's JSON gateway calls etcd's own gRPC
            // server with this certificate, which `--client-cert-auth` checks.
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), usage).unwrap();
        let (csr, keyfile, pem, ext) = (
            format!("{name}.csr"),
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        openssl(
            dir,
            &[
                &["req"][..],
                &key,
                &["-keyout", &keyfile, "-out", &csr, "-subj", &format!("/CN={name}")],
            ]
            .concat(),
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "1",
                "-extfile",
                &ext,
            ],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_reaches_etcd_over_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let file = |name: &str| dir.path().join(name).display().to_string();
    let (client, peer) = (
        format!("https://127.0.0.1:{}", free_port()),
        format!("http://127.0.0.1:{}", free_port()),
    );
    let mut etcd = Command::new("etcd")
        .args(["--name", "tls", "--data-dir"])
        .arg(dir.path().join("data"))
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
        .args(["--initial-cluster", &format!("tls={peer}")])
        .args([
            "--cert-file",
            &file("server.pem"),
            "--key-file",
            &file("server.key"),
        ])
        .args(["--client-cert-auth", "--trusted-ca-file", &file("ca.pem")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd is installed (apt-get install etcd-server)");
    let connect = |with_certificate: bool| {
        let mut raw = RawCluster {
            etcd: vec![client.clone()],
            replica: "tls".into(),
            ca_file: file("ca.pem"),
            secret_file: cluster_secret_file(),
            ..RawCluster::default()
        };
        if with_certificate {
            (raw.cert_file, raw.key_file) = (file("client.pem"), file("client.key"));
        }
        raw.validate(0).unwrap().unwrap()
    };
    let cluster = Cluster::connect(connect(true)).await.unwrap();
    let answered = first_claim(&cluster, "p|Alert").await;
    assert_eq!(
        answered,
        Some(Claim::Won),
        "a claim over TLS with the client certificate"
    );
    // etcd asks for a client certificate: without one, nothing is claimed.
    let anonymous = Cluster::connect(connect(false)).await.unwrap();
    assert!(anonymous.claim("p|Alert|2", "p", 5).await.is_err());
    assert!(!anonymous.is_available());
    let _ = etcd.kill();
    let _ = etcd.wait();
}

/// With etcd's users: a replica logs in, claims with its token, and logs in
/// again when etcd no longer knows the token (auth turned off and on
/// again forgets every token); without a user etcd refuses, and a wrong
/// password stops the replica at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_logs_in_to_etcd_with_a_user() {
    let etcd = Etcd::start(1);
    let url = etcd.members[0].client.clone();
    // A root user, then auth on, through etcd's JSON API (what `etcdctl
    // user add`, `role add`, `user grant-role`, `auth enable` send).
    for (path, body) in [
        ("/v3/auth/role/add", json!({"name": "root"})),
        (
            "/v3/auth/user/add",
            json!({"name": "root", "password": "root-password"}),
        ),
        ("/v3/auth/user/grant", json!({"user": "root", "role": "root"})),
        ("/v3/auth/enable", json!({})),
    ] {
        let (status, answer) = crate::real::http_with(&url, "POST", path, &[], &body.to_string()).unwrap();
        assert_eq!(status, 200, "{path}: {answer}");
    }
    let dir = tempfile::tempdir().unwrap();
    let with_password = |password: &str| {
        let file = dir.path().join(format!("password-{}", password.len()));
        std::fs::write(&file, format!("{password}\n")).unwrap();
        RawCluster {
            username: "root".into(),
            password_file: file.display().to_string(),
            ..raw_cluster(&etcd, "user")
        }
        .validate(0)
        .unwrap()
        .unwrap()
    };
    let cluster = Cluster::connect(with_password("root-password")).await.unwrap();
    let claimed = cluster.claim("p|Alert", "p", 5).await.unwrap();
    assert_eq!(claimed.claim, Claim::Won);

    let anonymous = Cluster::connect(raw_cluster(&etcd, "anonymous").validate(0).unwrap().unwrap())
        .await
        .unwrap();
    let refused = anonymous.claim("p|Alert|2", "p", 5).await.unwrap_err();
    assert!(!anonymous.is_available(), "{refused}");

    match Cluster::connect(with_password("not-the-password")).await {
        Err(e) => assert!(e.to_string().contains("refused the user"), "{e}"),
        Ok(_) => panic!("a wrong password was taken"),
    }

    // Auth off and on again: etcd forgets every token it gave.
    let (_, login) = crate::real::http_with(
        &url,
        "POST",
        "/v3/auth/authenticate",
        &[],
        r#"{"name": "root", "password": "root-password"}"#,
    )
    .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    for (path, headers) in [
        ("/v3/auth/disable", vec![("Authorization", token.as_str())]),
        ("/v3/auth/enable", vec![]),
    ] {
        let (status, answer) = crate::real::http_with(&url, "POST", path, &headers, "{}").unwrap();
        assert_eq!(status, 200, "{path}: {answer}");
    }
    let answered = first_claim(&cluster, "p|Alert|3").await;
    assert_eq!(
        answered,
        Some(Claim::Won),
        "a claim after the member forgot the token: {:?}",
        cluster.status().error
    );
}

/// A listener that answers every request with a 500 and a body no answer
/// may quote, keeping what it was sent.
struct Trap {
    url: String,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

/// What the trap answers: an internal service's secret.
const TRAP_BODY: &str = "INTERNAL-SERVICE-SECRET-0123";

impl Trap {
    async fn start() -> Trap {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let kept = kept.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    kept.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&request).into_owned());
                    let reply = format!(
                        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{TRAP_BODY}",
                        TRAP_BODY.len()
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                });
            }
        });
        Trap { url, seen, task }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const READ_TOKEN: &str = "test-read-token-0123456789";

async fn get_with(url: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = reqwest::Client::new().get(format!("{url}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Anyone who can write to etcd can list a "replica": a whole-cluster read
/// sends it no operator's or reader's token (a signature under the cluster
/// secret instead, good for `GET /audit` only), quotes none of its failed
/// reply, and asks a URL that is not http(s) nothing at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_url_written_to_etcd_gets_no_token_and_reads_nothing_back() {
    let etcd = Etcd::start(3);
    let raw = raw_cluster(&etcd, "merger");
    let merger = ServedHost::start(
        &[crm_plugin()],
        Arc::new(autoheal_containers::NoEngine),
        move |c| {
            c.auth.read_tokens = vec![READ_TOKEN.into()];
            c.cluster = raw;
        },
    )
    .await;
    let (trap, elsewhere) = (Trap::start().await, Trap::start().await);
    // Written to etcd as replicas (a Cluster handle writes what anyone could).
    replica_handle(&etcd, "evil")
        .await
        .register(&trap.url)
        .await
        .unwrap();
    let port = elsewhere.url.rsplit(':').next().unwrap().to_owned();
    replica_handle(&etcd, "script")
        .await
        .register(&format!("javascript:fetch('//127.0.0.1:{port}/')"))
        .await
        .unwrap();
    replica_handle(&etcd, "ftp")
        .await
        .register(&format!("ftp://127.0.0.1:{port}"))
        .await
        .unwrap();

    for token in [READ_TOKEN, OPERATOR_TOKEN] {
        let bearer = format!("Bearer {token}");
        let (status, body) = get_with(
            &merger.url,
            "/audit?cluster=true&n=10",
            &[("authorization", &bearer)],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(!body.contains(TRAP_BODY), "a failed reply is not quoted: {body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        let by_name = |name: &str| {
            answer["replicas"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["replica"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("{name} named in {answer:#}"))
        };
        assert_eq!(by_name("evil")["error"], "HTTP 500", "{answer:#}");
        for refused in ["script", "ftp"] {
            let entry = by_name(refused);
            assert_eq!(entry["refused"], true, "{entry}");
            assert!(entry["error"].as_str().unwrap().starts_with("refused"), "{entry}");
        }
        assert!(by_name("merger")["count"].is_number(), "{answer:#}");
    }
    let requests = trap.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for request in &requests {
        let lower = request.to_ascii_lowercase();
        assert!(!lower.contains("authorization"), "{request}");
        assert!(
            !request.contains(READ_TOKEN) && !request.contains(OPERATOR_TOKEN),
            "{request}"
        );
        assert!(lower.contains("x-autoheal-peer: v1 "), "{request}");
        assert!(request.starts_with("GET /audit?n=10 "), "{request}");
    }
    assert!(elsewhere.requests().is_empty(), "{:#?}", elsewhere.requests());

    // What the trap got opens `GET /audit` (for that query, briefly) and nothing else.
    let signature = requests[0]
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("x-autoheal-peer"))
        })
        .map(|(_, v)| v.trim().to_owned())
        .unwrap();
    let peer = [("x-autoheal-peer", signature.as_str())];
    assert_eq!(get_with(&merger.url, "/audit?n=10", &peer).await.0, 200);
    assert_eq!(get_with(&merger.url, "/audit?n=11", &peer).await.0, 401);
    assert_eq!(get_with(&merger.url, "/approvals", &peer).await.0, 401);
    assert_eq!(get_with(&merger.url, "/", &peer).await.0, 401);
}

/// A replica `owner` with the crm plugin needing approval (and `policy`
/// added to its `[policy]`), real mode, sent one alert on the webhook
/// token: the host, its engine, and the `approval_requested` event.
async fn owner_waiting_for_approval(
    etcd: &Etcd,
    policy: &str,
) -> (ServedHost, Arc<autoheal_containers::FakeRuntime>, Value) {
    let raw = raw_cluster(etcd, "owner");
    let fake = Arc::new(autoheal_containers::FakeRuntime::new());
    fake.add_running("crm-api", Duration::from_secs(3600));
    let owner = ServedHost::start(
        &[crm_plugin_with(&format!(
            "[policy]\napproval = \"required\"\napproval_expires = \"15m\"\n{policy}"
        ))],
        fake.clone(),
        move |c| {
            c.enabled = true;
            c.dry_run = false;
            c.default_cooldown_sec = 0;
            c.cluster = raw;
        },
    )
    .await;
    let body = json!({"version": "4", "status": "firing", "receiver": "autoheal",
        "alerts": [opted_in("TcpEndpointDownFast")]})
    .to_string();
    let (status, reply) = {
        let url = owner.url.clone();
        let bearer = format!("Bearer {WEBHOOK_TOKEN}");
        tokio::task::spawn_blocking(move || {
            crate::real::http_with(&url, "POST", "/alert", &[("Authorization", &bearer)], &body).unwrap()
        })
        .await
        .unwrap()
    };
    assert_eq!(status, 200, "{reply}");
    let requested = owner
        .wait_for("approval_requested", 1, Duration::from_secs(20))
        .await;
    (owner, fake, requested[0].clone())
}

/// Written straight to etcd's answers key, an answer without a valid proof
/// is recorded and removed, never applied: the approval still waits. An
/// answer a replica forwards (signed with the cluster secret) is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_answer_in_etcd_is_recorded_and_never_applied() {
    let etcd = Etcd::start(3);
    let (owner, fake, requested) = owner_waiting_for_approval(&etcd, "").await;
    let id = requested["approval"].as_str().unwrap().to_owned();
    // Published: another replica sees it.
    let other = replica_handle(&etcd, "r2").await;
    wait_for_published(&other, &id).await;

    // 1. Straight into etcd, as anyone with write access could: no proof.
    let client = etcd.client();
    let key = format!("/autoheal/answers/{id}");
    let forged = json!({"grant": true, "by": "mallory", "comment": null, "via": "r2"});
    client.put(key.as_str(), forged.to_string()).await.unwrap();
    // 2. With a proof, but not made with the cluster secret.
    let mut wrong = raw_cluster(&etcd, "r3");
    wrong.secret_file = secret_file_with("not-the-cluster-secret-0123456789abcdef");
    let impostor = handle_of(wrong).await;

    wait_for_refusals(&owner, 1).await;
    wait_until_gone(&client, &key).await;
    impostor
        .answer_approval(&id, true, shared_operator(), Some("mallory".into()), None)
        .await
        .unwrap();
    wait_for_refusals(&owner, 2).await;
    wait_until_gone(&client, &key).await;
    let warnings = owner.audit("host_warning").await;
    let refusals: Vec<&Value> = warnings
        .iter()
        .filter(|e| e["warning"] == "cluster_answer_refused")
        .collect();
    assert_eq!(refusals.len(), 2, "{warnings:#?}");
    assert!(
        refusals[0]["detail"].as_str().unwrap().contains("no proof"),
        "{refusals:#?}"
    );
    assert!(
        refusals[1]["detail"]
            .as_str()
            .unwrap()
            .contains("not made with the cluster secret"),
        "{refusals:#?}"
    );
    assert!(owner.audit("approval_granted").await.is_empty());
    assert!(fake.restarts().is_empty(), "nothing ran on a forged answer");
    let pending = owner.remediator.pending_approvals();
    assert_eq!(pending.len(), 1, "the approval still waits");

    // A replica's forwarded answer is applied.
    let forwarded = other
        .answer_approval(&id, true, shared_operator(), Some("alice".into()), None)
        .await
        .unwrap();
    assert_eq!(forwarded, autoheal::cluster::Forwarded::To("owner".into()));
    let granted = owner
        .wait_for("approval_granted", 1, Duration::from_secs(20))
        .await;
    assert_eq!(
        (&granted[0]["by"], &granted[0]["by_comment"]),
        (&json!("operator"), &json!("alice (via r2)")),
        "{granted:#?}"
    );
}

/// Issue 37: an approval that needs two approvers, granted by two people
/// on two other replicas (each answer signed with its principal): the
/// owner counts them, every replica lists the first grant, and the action
/// runs once, when the second comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_grants_given_on_two_replicas_by_two_people_run_the_action_once() {
    let etcd = Etcd::start(1);
    let (owner, fake, requested) =
        owner_waiting_for_approval(&etcd, "approvers = [\"group:sre\"]\napprovals_required = 2").await;
    let id = requested["approval"].as_str().unwrap().to_owned();
    assert_eq!(requested["requested_by"]["id"], "webhook", "{requested:#?}");
    let (r2, r3) = (
        replica_handle(&etcd, "r2").await,
        replica_handle(&etcd, "r3").await,
    );
    wait_for_published(&r2, &id).await;
    let person = |id: &str, name: &str| autoheal::cluster::AnswerPrincipal {
        kind: "person".into(),
        id: id.into(),
        name: Some(name.into()),
        groups: vec!["sre".into()],
    };

    let first = r2
        .answer_approval(&id, true, person("alice-sub", "Alice"), None, None)
        .await
        .unwrap();
    assert_eq!(first, autoheal::cluster::Forwarded::To("owner".into()));
    let recorded = owner
        .wait_for("approval_recorded", 1, Duration::from_secs(20))
        .await;
    assert_eq!(
        (
            &recorded[0]["by"],
            &recorded[0]["by_name"],
            &recorded[0]["approvals"]
        ),
        (&json!("alice-sub"), &json!("Alice"), &json!(1)),
        "{recorded:#?}"
    );
    // Every replica lists who has approved.
    let mut listed = Vec::new();
    for _ in 0..100 {
        let shared = r3.shared_approvals().await.unwrap_or_default();
        listed = shared
            .into_iter()
            .filter(|(published, _)| published == &id)
            .flat_map(|(_, a)| a.listing.approved_by)
            .map(|a| a.id)
            .collect();
        if !listed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listed, vec!["alice-sub".to_owned()]);
    assert!(fake.restarts().is_empty(), "one grant of two runs nothing");

    // A proven answer from someone outside the policy (forwarded without
    // judging it, as a replica that saw a cut listing does) is refused at
    // the owner, and the refusal is in its trail: the 202 it was answered
    // where it was given is not the last word anyone hears.
    let outsider = autoheal::cluster::AnswerPrincipal {
        groups: vec!["dev".into()],
        ..person("dave-sub", "Dave")
    };
    r3.answer_approval(&id, true, outsider, None, None).await.unwrap();
    let mut refusals = Vec::new();
    for _ in 0..100 {
        refusals = owner
            .audit("host_warning")
            .await
            .into_iter()
            .filter(|e| e["warning"] == "cluster_answer_refused")
            .collect();
        if !refusals.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let detail = refusals
        .first()
        .and_then(|e| e["detail"].as_str())
        .unwrap_or_else(|| panic!("a cluster_answer_refused warning: {refusals:#?}"));
    assert!(
        detail.contains("replica r3 by dave-sub") && detail.contains("group:sre"),
        "{detail}"
    );
    assert_eq!(owner.audit("approval_recorded").await.len(), 1, "not counted");

    let second = r3
        .answer_approval(
            &id,
            true,
            person("bob-sub", "Bob"),
            Some("bob at the desk".into()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(second, autoheal::cluster::Forwarded::To("owner".into()));
    let granted = owner
        .wait_for("approval_granted", 1, Duration::from_secs(20))
        .await;
    let approved: Vec<&str> = granted[0]["approved_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(approved, vec!["alice-sub", "bob-sub"], "{granted:#?}");
    assert_eq!(
        (&granted[0]["by"], &granted[0]["by_comment"]),
        (&json!("bob-sub"), &json!("bob at the desk (via r3)")),
        "{granted:#?}"
    );
    owner.wait_for("action_ok", 1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fake.restarts(), vec!["crm-api".to_owned()], "it ran once");
    assert_eq!(owner.audit("approval_granted").await.len(), 1);
}

/// The first claim of `key` the cluster answers, trying for up to 10 s
/// (a member may still be starting, or logging in); `None` if none did.
async fn first_claim(cluster: &Cluster, key: &str) -> Option<Claim> {
    for _ in 0..100 {
        if let Ok(claimed) = cluster.claim(key, "p", 5).await {
            return Some(claimed.claim);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Waits until `host` has recorded `n` refused answers.
async fn wait_for_refusals(host: &ServedHost, n: usize) {
    for _ in 0..100 {
        let warnings = host.audit("host_warning").await;
        if warnings
            .iter()
            .filter(|e| e["warning"] == "cluster_answer_refused")
            .count()
            >= n
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{n} refused answers were never recorded");
}

/// Waits until approval `id` is published to etcd.
async fn wait_for_published(cluster: &Cluster, id: &str) {
    for _ in 0..100 {
        let shared = cluster.shared_approvals().await.unwrap_or_default();
        if shared.iter().any(|(published, _)| published == id) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("approval {id} was never published");
}

/// Waits until `key` is gone from etcd (the owner removed a refused answer).
async fn wait_until_gone(client: &EtcdClient, key: &str) {
    for _ in 0..100 {
        if client.get(key).await.unwrap().is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{key} was never removed");
}

/// A replica whose plugin declines gives its claim back: the action
/// changed nothing, so the claim (which is the shared cooldown) must not
/// hold the alert from the other replicas for the cooldown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skip_gives_the_claim_back() {
    let etcd = Etcd::start(1);
    let raw = raw_cluster(&etcd, "skipper");
    let fake = Arc::new(autoheal_containers::FakeRuntime::new());
    // Up 5 s: under the plugin's default 60 s guard, so it declines.
    fake.add_running("crm-api", Duration::from_secs(5));
    let plugin = (
        "restart.toml",
        manifest(
            "restart-crm-api",
            "restart_container.wasm",
            &["TcpEndpointDownFast"],
            &["crm-api"],
            "[limits]\ncooldown = \"2h\"\n[config]\ncontainer = \"crm-api\"",
        ),
    );
    let skipper = ServedHost::start(&[plugin], fake.clone(), move |c| {
        c.enabled = true;
        c.dry_run = false;
        c.cluster = raw;
    })
    .await;
    let other = replica_handle(&etcd, "other").await;
    // The claim the skipper will ask for is free now, and would hold 2 h.
    let key = "restart-crm-api|TcpEndpointDownFast";
    skipper
        .post_alerts(json!([opted_in("TcpEndpointDownFast")]))
        .await;
    let skipped = skipper
        .wait_for("action_skipped", 1, Duration::from_secs(20))
        .await;
    assert_eq!(skipped[0]["cooldown_key"], key, "{skipped:#?}");
    let mut free = false;
    for _ in 0..50 {
        match other.claim(key, "restart-crm-api", 60).await.unwrap().claim {
            Claim::Won => {
                free = true;
                break;
            }
            Claim::Held { by } => assert_eq!(by, "skipper"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(free, "the skipper kept its claim after the skip");
}

/// Issue 40: while its etcd does not answer, a replica runs each alert's
/// action in dry-run (`cluster_unavailable`). Nothing ran, so nothing is
/// watched: no `remediation_watched`, no verdict once `[verify] within` has
/// passed, no escalation to the chain's next plugin, nothing counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_forced_by_a_lost_cluster_is_never_watched_nor_judged() {
    let mut etcd = Etcd::start(1);
    let raw = raw_cluster(&etcd, "alone");
    let fake = Arc::new(autoheal_containers::FakeRuntime::new());
    fake.add_running("crm-api", Duration::from_secs(3600));
    let plugin = crm_plugin_with("[verify]\nwithin = \"1s\"\n[escalate]\nthen = [\"not-loaded\"]");
    let host = ServedHost::start(&[plugin], fake.clone(), move |c| {
        real(c);
        c.default_cooldown_sec = 0;
        c.cluster = raw;
    })
    .await;
    etcd.stop_member(0);
    host.post_alerts(json!([opted_in("TcpEndpointDownFast")])).await;
    let started = host.wait_for("action_dry_run", 1, Duration::from_secs(30)).await;
    assert_eq!(started.len(), 1);
    let started = host.audit("action_started").await;
    assert_eq!(
        started[0]["dry_run_reason"], "cluster_unavailable",
        "{started:#?}"
    );
    assert!(fake.restarts().is_empty());
    let page = host.get_ok("/").await;
    assert_eq!(page["verifying"], json!([]), "{page:#}");
    // Past the deadline and the tick that would judge it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let judged = host
        .audit("remediation_watched,remediation_verified,remediation_ineffective,decision_skip")
        .await;
    assert!(judged.is_empty(), "{judged:#?}");
    let metrics = host.host.metrics.render(1, &[], &[]);
    let counted: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("autoheal_remediations_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(counted, 0.0, "{metrics}");
}

/// A storm on three replicas: the same webhook of 100 distinct alerts
/// reaches each (as an Alertmanager HA pair and its retries would), every
/// replica queues what it claimed past its plugin's `max_concurrent`, and
/// each alert is acted on exactly once across the cluster — none skipped as
/// `overloaded` by all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_queue_a_storm_and_act_on_each_alert_exactly_once() {
    let etcd = Etcd::start(3);
    let plugin = [("storm.toml", crate::hostile::looping("Storm", ""))];
    let mut replicas = Vec::new();
    for name in ["r1", "r2", "r3"] {
        let raw = raw_cluster(&etcd, name);
        let replica = ServedHost::start_staged(
            0,
            &["misbehave"],
            &plugin,
            Arc::new(autoheal_containers::NoEngine),
            move |c| c.cluster = raw,
        )
        .await;
        replicas.push(replica);
    }
    let alerts = Value::Array(
        (0..100)
            .map(|i| crate::hostile::on_instance("Storm", &format!("i{i}")))
            .collect(),
    );
    let answers =
        futures_util::future::join_all(replicas.iter().map(|r| r.post_alerts(alerts.clone()))).await;
    for answer in &answers {
        let decided = answer["decisions"].as_array().unwrap();
        assert!(decided.iter().all(|d| d["reason"] != "overloaded"), "{answer}");
    }
    // Every alert's one action ends (each spins to its 400 ms deadline).
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut started = Vec::new();
    loop {
        let mut ended = 0;
        started.clear();
        for replica in &replicas {
            ended += replica.audit("action_fail").await.len();
            started.extend(replica.audit("action_started").await);
        }
        if ended >= 100 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{ended} of 100 actions ended"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut acted: BTreeMap<String, usize> = BTreeMap::new();
    for event in &started {
        *acted
            .entry(event["fingerprint"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(acted.len(), 100, "every alert acted on");
    assert!(acted.values().all(|&n| n == 1), "each exactly once: {acted:?}");
    let queued: usize = {
        let mut count = 0;
        for replica in &replicas {
            count += replica.audit("action_queued").await.len();
        }
        count
    };
    assert!(
        queued > 0,
        "a storm of 100 on 3 replicas of 4 places each queues some"
    );
    for replica in &replicas {
        let overloaded = replica
            .audit("decision_skip")
            .await
            .into_iter()
            .filter(|s| s["reason"] == "overloaded")
            .count();
        assert_eq!(overloaded, 0);
    }
}

/// A repeat cap counts every replica's actions: two on A, and the third
/// alert of the same key, sent to B once A's claim has run out, is
/// skipped as `repeat_cap`. B never saw A's actions but through etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_cap_holds_across_replicas() {
    let etcd = Etcd::start(1);
    let start = |name: &str| {
        let raw = raw_cluster(&etcd, name);
        let fake = Arc::new(autoheal_containers::FakeRuntime::new());
        fake.add_running("crm-api", Duration::from_secs(3600));
        async move {
            let host = ServedHost::start(&[crate::repeat_cap::twice_an_hour()], fake.clone(), move |c| {
                c.enabled = true;
                c.dry_run = false;
                c.circuit_breaker.max_restarts = 100;
                c.cluster = raw;
            })
            .await;
            (host, fake)
        }
    };
    let (a, a_engine) = start("a").await;
    let (b, b_engine) = start("b").await;
    for n in 1..=2 {
        let reply = a.post_alerts(json!([opted_in("TcpEndpointDownFast")])).await;
        assert_eq!(reply["decisions"][0]["decision"], "act", "{reply:#}");
        a.wait_for("action_ok", n, Duration::from_secs(30)).await;
    }
    assert_eq!(a_engine.restarts().len(), 2);
    // A's claim on the key holds a few seconds (a 0 s cooldown's shortest
    // claim); until it runs out B's answer is `claimed`, then the cap's.
    let mut reason = Value::Null;
    for _ in 0..100 {
        let reply = b.post_alerts(json!([opted_in("TcpEndpointDownFast")])).await;
        reason = reply["decisions"][0]["reason"].clone();
        if reason != "claimed" {
            assert_eq!(
                reply["decisions"][0]["detail"], "2 actions in the last 1h (limits.max_actions \"2/1h\")",
                "{reply:#}"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(reason, "repeat_cap");
    assert!(b_engine.restarts().is_empty(), "B acted past the cap");
}

/// A maintenance window is config: replicas given the same `[[maintenance]]`
/// tables each skip what it covers as `paused`, whichever replica the alert
/// reaches, and takes no claim for it (the skip comes before any).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_the_same_window_all_skip_what_it_covers() {
    let etcd = Etcd::start(1);
    let mut replicas = Vec::new();
    for name in ["w1", "w2"] {
        let raw = raw_cluster(&etcd, name);
        let fake = Arc::new(autoheal_containers::FakeRuntime::new());
        let replica = ServedHost::start(&[crm_plugin()], fake, move |c| {
            c.cluster = raw;
            crate::maintenance::windows(c);
        })
        .await;
        replicas.push(replica);
    }
    let mut alert = opted_in("TcpEndpointDownFast");
    alert["labels"]["service"] = json!("crm");
    for replica in &replicas {
        let answer = replica.post_alerts(json!([alert.clone()])).await;
        let decision = &answer["decisions"][0];
        assert_eq!(decision["reason"], "paused", "{answer:#}");
        let skips = replica.audit("decision_skip").await;
        assert_eq!(skips[0]["pause_id"], "window:db-upgrade", "{skips:#?}");
        assert!(replica.audit("action_started").await.is_empty());
    }
    let (_, metrics) = http(&replicas[0].url, "GET", "/metrics", "").unwrap();
    let metrics = metrics.as_str().unwrap().to_owned();
    assert_eq!(
        sample(&metrics, "autoheal_claims_total{outcome=\"won\"}"),
        0.0,
        "no claim for a paused action"
    );
}

/// The shared operator token, as a forwarded answer carries it.
fn shared_operator() -> autoheal::cluster::AnswerPrincipal {
    autoheal::remediation::approval_policy::answer_principal(&autoheal::auth::Principal::shared(
        autoheal::auth::Scope::Operator,
        false,
    ))
}

/// Issue 37: a console session works on every replica (its key comes from
/// the cluster secret), and so does its sign-out: signed out on one
/// replica, the same cookie is refused on the other within seconds. The
/// provider is not needed for this (it is down: sessions are the host's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_out_on_one_replica_ends_the_session_on_every_replica() {
    use autoheal::auth::session::{CSRF_HEADER, Purpose, SESSION_COOKIE, SessionKeys, new_session};
    let etcd = Etcd::start(1);
    let replica = |name: &'static str| {
        let raw = raw_cluster(&etcd, name);
        move |c: &mut autoheal::config::RawConfig| {
            c.cluster = raw;
            c.public_url = "http://127.0.0.1:9".into();
            c.auth.oidc = Some(autoheal::config::RawOidc {
                issuer: format!("http://127.0.0.1:{}", free_port()),
                client_id: "autoheal".into(),
                ..autoheal::config::RawOidc::default()
            });
            c.auth.roles = vec![autoheal::config::RawRoleRule {
                group: "sre".into(),
                role: "viewer".into(),
                plugins: Vec::new(),
            }];
        }
    };
    let a = ServedHost::start(
        &[crm_plugin()],
        Arc::new(autoheal_containers::NoEngine),
        replica("a"),
    )
    .await;
    let b = ServedHost::start(
        &[crm_plugin()],
        Arc::new(autoheal_containers::NoEngine),
        replica("b"),
    )
    .await;

    // A session as the callback seals it, under the key every replica derives.
    let secret = raw_cluster(&etcd, "test").validate(0).unwrap().unwrap().secret;
    let keys = SessionKeys::new(None, Some(&secret));
    let now = autoheal_core::util::unix_now() as i64;
    let session = new_session(
        "alice".into(),
        Some("Alice".into()),
        vec!["sre".into()],
        now,
        3600,
    );
    let cookie = format!("{SESSION_COOKIE}={}", keys.seal(Purpose::Session, &session));
    let ask = |url: String, method: &'static str, path: &'static str, csrf: Option<String>| {
        let cookie = cookie.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut headers = vec![("Cookie", cookie.as_str())];
                if let Some(csrf) = &csrf {
                    headers.push((CSRF_HEADER, csrf.as_str()));
                }
                crate::real::http_with(&url, method, path, &headers, "").unwrap()
            })
            .await
            .unwrap()
        }
    };
    for host in [&a, &b] {
        let (status, me) = ask(host.url.clone(), "GET", "/auth/me", None).await;
        assert_eq!((status, &me["id"]), (200, &json!("alice")), "{me}");
    }

    let (status, reply) = ask(a.url.clone(), "POST", "/auth/logout", Some(session.csrf.clone())).await;
    assert_eq!((status, &reply["signed_out"]), (200, &json!(true)), "{reply}");
    let (status, _) = ask(a.url.clone(), "GET", "/auth/me", None).await;
    assert_eq!(status, 401, "refused at once where it was signed out");
    let mut refused_on_b = false;
    for _ in 0..50 {
        let (status, _) = ask(b.url.clone(), "GET", "/auth/me", None).await;
        if status == 401 {
            refused_on_b = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        refused_on_b,
        "the other replica still takes the signed-out session"
    );
}
