//! Real components for end-to-end tests: a Podman engine serving the Docker
//! API on a private socket, busybox containers on 127.0.0.1, an Alertmanager,
//! and the host serving over loopback. Each test gets its own of everything.
//!
//! Needs Debian's podman, runc, busybox-static, prometheus-alertmanager and
//! prometheus (`.ci/run` and `cargo xtask test` install them).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autoheal::app::Host;
use autoheal::config::RawConfig;
use autoheal::remediation::Remediator;
use autoheal_containers::{ContainerRuntime, DockerRuntime, EngineAddress};
use serde_json::{Value, json};
use tempfile::TempDir;

pub const IMAGE: &str = "localhost/autoheal-busybox:latest";

/// A name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn podman() -> Command {
    let mut command = Command::new("podman");
    // crun fails on these machines; runc works with explicit ulimits (DESIGN.md).
    command.args(["--runtime", "runc"]);
    command
}

/// `podman` on a storage of its own (`--root`, `--runroot`, `--tmpdir`
/// under `storage`), or on the machine's.
fn podman_on(storage: Option<&Path>) -> Command {
    let mut command = podman();
    if let Some(storage) = storage {
        command
            .arg("--root")
            .arg(storage.join("root"))
            .arg("--runroot")
            .arg(storage.join("runroot"))
            .arg("--tmpdir")
            .arg(storage.join("tmp"));
    }
    command
}

/// Polls `check` until it returns `Some`, or fails the test with `what`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Podman API service on a private socket, and the containers it made.
pub struct Podman {
    service: Child,
    pub socket: PathBuf,
    containers: Mutex<Vec<String>>,
    /// Storage of its own (`--root`, `--runroot`, `--tmpdir`), or the machine's.
    storage: Option<PathBuf>,
    _dir: TempDir,
}

impl Podman {
    pub fn start() -> Podman {
        Self::start_with(false)
    }

    /// A second engine: its own storage, so that its containers are its own
    /// (two sockets of one storage would be one engine).
    pub fn start_isolated() -> Podman {
        Self::start_with(true)
    }

    fn start_with(isolated: bool) -> Podman {
        let dir = tempfile::tempdir().unwrap();
        let storage = isolated.then(|| dir.path().join("storage"));
        match &storage {
            Some(storage) => {
                let tar = busybox_image_tar();
                run(podman_on(Some(storage))
                    .arg("import")
                    .arg(tar.path().join("busybox.tar"))
                    .arg(IMAGE));
            }
            None => ensure_image(),
        }
        let socket = dir.path().join("podman.sock");
        let service = podman_on(storage.as_deref())
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman is installed (apt-get install podman runc busybox-static)");
        let podman = Podman {
            service,
            socket,
            containers: Mutex::new(Vec::new()),
            storage,
            _dir: dir,
        };
        wait_until("the podman API socket", Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&podman.socket).ok()
        });
        podman
    }

    /// `podman` on this engine's storage.
    pub fn cmd(&self) -> Command {
        podman_on(self.storage.as_deref())
    }

    /// Podman's own restart events since `since` (unix seconds), of one
    /// container or all, oldest first.
    pub fn restart_events(&self, since: &str, container: Option<&str>) -> Vec<Value> {
        let mut command = self.cmd();
        command.args(["events", "--stream=false", "--since", since]);
        if let Some(container) = container {
            command.args(["--filter", &format!("container={container}")]);
        }
        let output = command
            .args(["--filter", "event=restart", "--format", "json"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "podman events: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("podman event {line:?}: {e}")))
            .collect()
    }

    /// The containers Podman itself says it restarted since `since`, one
    /// name per restart.
    pub fn restarted_since(&self, since: &str) -> Vec<String> {
        self.restart_events(since, None)
            .iter()
            .map(|event| event["Name"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub fn runtime(&self) -> Arc<dyn ContainerRuntime> {
        Arc::new(DockerRuntime::new(
            EngineAddress::Unix(self.socket.clone()),
            Duration::from_secs(10),
        ))
    }

    /// A busybox container running `script` under `sh`, with these
    /// `--label`s; removed with this engine.
    pub fn run_script(&self, name: &str, labels: &[&str], script: &str) {
        self.containers.lock().unwrap().push(name.to_owned());
        let mut command = self.cmd();
        command
            .args(["run", "-d", "--network", "host"])
            .args(["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"])
            .args(["--name", name]);
        for label in labels {
            command.args(["--label", label]);
        }
        run(command.args([IMAGE, "/bin/busybox", "sh", "-c", script]));
    }

    /// A busybox httpd container serving on 127.0.0.1:`port`.
    pub fn run_httpd(&self, name: &str, port: u16) {
        self.containers.lock().unwrap().push(name.to_owned());
        run(self
            .cmd()
            .args(["run", "-d", "--network", "host"])
            .args(["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"])
            .args(["--name", name, IMAGE])
            .args(["/bin/busybox", "httpd", "-f", "-p", &format!("127.0.0.1:{port}")]));
        wait_until("the container's httpd", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }

    /// As [`Podman::run_httpd`], with a health check that passes or fails,
    /// run once, so that the engine reports it `healthy` or `unhealthy`.
    pub fn run_httpd_with_health(&self, name: &str, port: u16, healthy: bool) {
        self.containers.lock().unwrap().push(name.to_owned());
        // The exec form: the image has no /bin/sh for CMD-SHELL.
        let check = if healthy {
            r#"["/bin/busybox","true"]"#
        } else {
            r#"["/bin/busybox","false"]"#
        };
        run(self
            .cmd()
            .args(["run", "-d", "--network", "host"])
            .args(["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"])
            .args([
                "--health-cmd",
                check,
                "--health-retries",
                "1",
                "--health-interval",
                "disable",
            ])
            .args(["--name", name, IMAGE])
            .args(["/bin/busybox", "httpd", "-f", "-p", &format!("127.0.0.1:{port}")]));
        wait_until("the container's httpd", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        // The check's exit status is the verdict, not a failure of ours.
        let _ = self.cmd().args(["healthcheck", "run", name]).output();
        let want = if healthy { "healthy" } else { "unhealthy" };
        wait_until(&format!("{name} to be {want}"), Duration::from_secs(20), || {
            let status = run(self
                .cmd()
                .args(["inspect", "--format", "{{.State.Health.Status}}", name]));
            (status == want).then_some(())
        });
    }

    pub fn started_at(&self, name: &str) -> String {
        run(self
            .cmd()
            .args(["inspect", "--format", "{{.State.StartedAt}}", name]))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for name in self.containers.lock().unwrap().iter() {
            let _ = self.cmd().args(["rm", "-f", "-t", "0", name]).output();
        }
        if self.storage.is_some() {
            // Unmounts and deletes what this engine alone had.
            let _ = self.cmd().args(["system", "reset", "--force"]).output();
        }
        let _ = self.service.kill();
        let _ = self.service.wait();
    }
}

/// Imports the busybox image from the local busybox binary, once.
fn ensure_image() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if *done {
        return;
    }
    let exists = podman()
        .args(["image", "exists", IMAGE])
        .status()
        .map(|s| s.success());
    if !exists.unwrap_or(false) {
        let dir = busybox_image_tar();
        run(podman()
            .arg("import")
            .arg(dir.path().join("busybox.tar"))
            .arg(IMAGE));
    }
    *done = true;
}

/// A directory holding `busybox.tar`: a root filesystem of the local busybox binary.
fn busybox_image_tar() -> TempDir {
    {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("img/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox is installed (apt-get install busybox-static)");
        std::fs::copy(busybox, bin.join("busybox")).unwrap();
        let tar = dir.path().join("busybox.tar");
        run(Command::new("tar")
            .arg("-C")
            .arg(dir.path().join("img"))
            .arg("-cf")
            .arg(&tar)
            .arg("."));
        dir
    }
}

/// An Alertmanager that routes every alert to `webhook` quickly.
pub struct Alertmanager {
    pub url: String,
    _daemon: Daemon,
}

impl Alertmanager {
    pub fn start(webhook: &str) -> Alertmanager {
        Self::start_with(webhook, None)
    }

    /// As [`Alertmanager::start`], and autoheal's own alerts
    /// (`alertname=~"Autoheal.*"`, the original system's route) to `notify`.
    pub fn start_with_notify(webhook: &str, notify: &str) -> Alertmanager {
        Self::start_with(webhook, Some(notify))
    }

    fn start_with(webhook: &str, notify: Option<&str>) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, Self::config_yaml(webhook, notify, true)).unwrap();
        Self::serve(&config, dir)
    }

    /// Routes every alert to `webhook` (its resolved notifications too when
    /// `send_resolved`), autoheal's own to `notify` if given.
    fn config_yaml(webhook: &str, notify: Option<&str>, send_resolved: bool) -> String {
        let (route, receiver) = match notify {
            Some(url) => (
                "  routes:\n    - matchers: ['alertname=~\"Autoheal.*\"']\n      receiver: notify\n"
                    .to_owned(),
                format!(
                    "  - name: notify\n    webhook_configs:\n      - url: {url}\n        send_resolved: true\n"
                ),
            ),
            None => (String::new(), String::new()),
        };
        format!(
            "route:\n  receiver: autoheal\n  group_by: [alertname]\n  group_wait: 200ms\n  \
             group_interval: 1s\n  repeat_interval: 3s\n{route}\
             receivers:\n  - name: autoheal\n    webhook_configs:\n      - url: {webhook}\n        send_resolved: {send_resolved}\n        \
             http_config:\n          authorization:\n            credentials: {token}\n{receiver}",
            token = crate::support::WEBHOOK_TOKEN,
        )
    }

    /// Alertmanager on the config file `config`, its data kept in `dir`.
    pub(crate) fn serve(config: &Path, dir: tempfile::TempDir) -> Alertmanager {
        let port = free_port();
        let mut command = Self::command(config, &dir, port);
        // Alone: no HA mode (it would wait for peers that never come).
        command.arg("--cluster.listen-address=");
        let daemon = Daemon::start(command, "prometheus-alertmanager", port, dir);
        Alertmanager {
            url: daemon.url.clone(),
            _daemon: daemon,
        }
    }

    /// `prometheus-alertmanager` on `config`, its data in `dir`, serving on
    /// `port`; not in a cluster unless the caller adds `--cluster.*`.
    fn command(config: &Path, dir: &TempDir, port: u16) -> Command {
        let mut command = Command::new("prometheus-alertmanager");
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        command
    }

    /// This Alertmanager's cluster peers, as it sees them (`GET /api/v2/status`).
    pub fn peers(&self) -> usize {
        let (status, body) = http(&self.url, "GET", "/api/v2/status", "").unwrap();
        assert_eq!(status, 200, "{body}");
        body["cluster"]["peers"].as_array().map_or(0, Vec::len)
    }

    /// Alertmanager on the shipped `monitoring/alertmanager.yml`, changed
    /// only in where things are: autoheal's webhook URL becomes `webhook`,
    /// and the webhook token is read from `token_file` instead of
    /// /etc/alertmanager/autoheal-webhook-token. Routes, timings and
    /// receivers are as shipped.
    pub fn start_shipped(webhook: &str, token_file: &Path) -> Alertmanager {
        let shipped = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring/alertmanager.yml"),
        )
        .unwrap();
        let mut config = shipped;
        for (shipped, test) in [
            ("http://127.0.0.1:9009/alert", webhook.to_owned()),
            (
                "/etc/alertmanager/autoheal-webhook-token",
                token_file.display().to_string(),
            ),
        ] {
            assert!(
                config.contains(shipped),
                "the shipped alertmanager.yml no longer names {shipped}"
            );
            config = config.replace(shipped, &test);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alertmanager.yml");
        std::fs::write(&path, config).unwrap();
        Self::serve(&path, dir)
    }

    /// Pushes one alert through Alertmanager's own API. `ends_at` in the
    /// past resolves it.
    pub fn push(&self, labels: Value, annotations: Value, ends_at: Option<&str>) {
        let mut alert = json!({ "labels": labels, "annotations": annotations, "generatorURL": "http://prometheus.example/graph" });
        if let Some(ends_at) = ends_at {
            alert["endsAt"] = json!(ends_at);
        }
        let (status, body) = http(&self.url, "POST", "/api/v2/alerts", &json!([alert]).to_string()).unwrap();
        assert_eq!(status, 200, "Alertmanager refused the alert: {body}");
    }
}

/// Two Alertmanagers in one HA cluster, gossiping on loopback, as users run
/// them: each routes every alert to `webhook` and autoheal's own to
/// `notify`. Both are started before either is waited for, so each finds
/// the other at its first join.
pub struct AlertmanagerPair {
    /// The members, in order; [`AlertmanagerPair::stop`] takes one out.
    pub members: Vec<Option<Alertmanager>>,
    /// Their URLs, stopped or not.
    pub urls: Vec<String>,
}

impl AlertmanagerPair {
    /// The pair, with resolved notifications not sent to `webhook`: what
    /// autoheal learns of a resolution then comes from asking Alertmanager.
    pub fn start(webhook: &str, notify: &str) -> AlertmanagerPair {
        let yaml = Alertmanager::config_yaml(webhook, Some(notify), false);
        let ports = [free_port(), free_port()];
        let gossip = [free_port(), free_port()];
        let spawned: Vec<(Child, TempDir, u16)> = (0..2)
            .map(|i| {
                let dir = tempfile::tempdir().unwrap();
                let config = dir.path().join("alertmanager.yml");
                std::fs::write(&config, &yaml).unwrap();
                let mut command = Alertmanager::command(&config, &dir, ports[i]);
                command
                    .arg(format!("--cluster.listen-address=127.0.0.1:{}", gossip[i]))
                    .arg(format!("--cluster.advertise-address=127.0.0.1:{}", gossip[i]))
                    .arg(format!("--cluster.peer=127.0.0.1:{}", gossip[1 - i]))
                    // Quick to settle, to notice a member gone and to hand
                    // notifications to the next in line: a test, not a fleet.
                    .args([
                        "--cluster.gossip-interval=50ms",
                        "--cluster.pushpull-interval=1s",
                        "--cluster.peer-timeout=1s",
                        "--cluster.reconnect-interval=1s",
                        "--cluster.settle-timeout=5s",
                    ]);
                (Daemon::spawn(command, "prometheus-alertmanager"), dir, ports[i])
            })
            .collect();
        let members: Vec<Option<Alertmanager>> = spawned
            .into_iter()
            .map(|(process, dir, port)| {
                let daemon = Daemon::ready(process, "prometheus-alertmanager", port, dir);
                Some(Alertmanager {
                    url: daemon.url.clone(),
                    _daemon: daemon,
                })
            })
            .collect();
        let urls = members.iter().flatten().map(|m| m.url.clone()).collect();
        let pair = AlertmanagerPair { members, urls };
        for member in pair.members.iter().flatten() {
            wait_until(
                "the Alertmanagers to see each other",
                Duration::from_secs(60),
                || (member.peers() == 2).then_some(()),
            );
        }
        pair
    }

    /// Member `index`, running.
    pub fn member(&self, index: usize) -> &Alertmanager {
        self.members[index].as_ref().expect("the member runs")
    }

    /// Stops member `index` (its process is killed; its port refuses).
    pub fn stop(&mut self, index: usize) {
        self.members[index] = None;
    }
}

/// A real Prometheus running the shipped `monitoring/prometheus.yml` and
/// rules, with 1 s scrape and evaluation intervals so that tests are quick.
pub struct Prometheus {
    pub url: String,
    _daemon: Daemon,
}

impl Prometheus {
    /// Starts it on `port`, with each `(shipped address, test address)` of
    /// `targets` replaced in the config (the shipped one must be there).
    /// Addresses not replaced keep pointing at the shipped defaults, where
    /// nothing listens in tests: those targets are simply down.
    /// Its autoheal scrape sends a read token no test host asks for (their
    /// read routes are open, so it is ignored).
    pub fn start(port: u16, targets: &[(&str, &str)]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("autoheal-read-token");
        std::fs::write(&token, "a-read-token-no-host-asks-for\n").unwrap();
        Self::start_in(dir, port, targets, &token)
    }

    /// As [`Prometheus::start`], the autoheal scrape sending the read token
    /// in `token_file` (the shipped config's /etc/prometheus/autoheal-read-token).
    pub fn start_reading(port: u16, targets: &[(&str, &str)], token_file: &Path) -> Prometheus {
        Self::start_in(tempfile::tempdir().unwrap(), port, targets, token_file)
    }

    fn start_in(dir: TempDir, port: u16, targets: &[(&str, &str)], token_file: &Path) -> Prometheus {
        let monitoring = Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring");
        let shipped = std::fs::read_to_string(monitoring.join("prometheus.yml")).unwrap();
        let mut config = shipped
            .replace("scrape_interval: 15s", "scrape_interval: 1s")
            .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
            .replace(
                "rules/*.yml",
                &monitoring.join("rules/*.yml").display().to_string(),
            );
        assert!(
            config.contains("interval: 1s"),
            "the shipped prometheus.yml changed shape"
        );
        for (shipped_address, address) in targets {
            assert!(
                config.contains(shipped_address),
                "the shipped prometheus.yml no longer names {shipped_address}"
            );
            config = config.replace(shipped_address, address);
        }
        // Firing alerts go nowhere unless the test says where: not to an
        // Alertmanager that happens to run on this machine's default port.
        let nowhere = format!("127.0.0.1:{}", free_port());
        config = config.replace("127.0.0.1:9093", &nowhere);
        let read_token = "/etc/prometheus/autoheal-read-token";
        assert!(
            config.contains(read_token),
            "the shipped prometheus.yml no longer reads {read_token}"
        );
        config = config.replace(read_token, &token_file.display().to_string());
        let daemon = prometheus_daemon(&config, port, dir);
        Prometheus {
            url: daemon.url.clone(),
            _daemon: daemon,
        }
    }

    /// The value of an instant query with a single result, if there is one.
    pub fn query(&self, expr: &str) -> Option<f64> {
        prometheus_query(&self.url, expr)
    }
}

/// The value of an instant query with a single result, if there is one.
pub fn prometheus_query(url: &str, expr: &str) -> Option<f64> {
    let encoded: String = expr
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (_, body) = http(url, "GET", &format!("/api/v1/query?query={encoded}"), "").ok()?;
    let result = body["data"]["result"].as_array()?;
    let value = result.first()?["value"][1].as_str()?;
    value.parse().ok()
}

/// A server process of a Debian package on 127.0.0.1:`port`, with its
/// files in `dir`; killed when dropped.
pub(crate) struct Daemon {
    process: Child,
    pub(crate) url: String,
    _dir: TempDir,
}

/// A Prometheus on `config` (written into `dir`, its data there too),
/// serving on `port` once ready.
pub(crate) fn prometheus_daemon(config: &str, port: u16, dir: TempDir) -> Daemon {
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, config).unwrap();
    let mut command = Command::new("prometheus");
    command
        .arg(format!("--config.file={}", path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    Daemon::start(command, "prometheus", port, dir)
}

impl Daemon {
    /// Spawns `command` and waits until `GET /-/ready` (Prometheus' and
    /// Alertmanager's readiness endpoint) answers 200.
    pub(crate) fn start(command: Command, package: &str, port: u16, dir: TempDir) -> Daemon {
        Self::ready(Self::spawn(command, package), package, port, dir)
    }

    fn spawn(mut command: Command, package: &str) -> Child {
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?} (apt-get install {package}): {e}"))
    }

    /// The spawned `process`, once it serves on `port`.
    fn ready(process: Child, package: &str, port: u16, dir: TempDir) -> Daemon {
        let daemon = Daemon {
            process,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        wait_until(&format!("{package} to be ready"), Duration::from_secs(60), || {
            http(&daemon.url, "GET", "/-/ready", "")
                .ok()
                .filter(|(s, _)| *s == 200)
        });
        daemon
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The host serving over loopback, in this process.
pub struct ServedHost {
    pub host: Host,
    /// `host.remediator`, which most tests drive.
    pub remediator: Arc<Remediator>,
    pub url: String,
    /// The host's directory; `None` only while [`ServedHost::restart`] moves it on.
    dir: Option<TempDir>,
    server: tokio::task::JoinHandle<()>,
}

impl ServedHost {
    /// Starts the host with `plugins` (manifest file, text) and the bundled component.
    pub async fn start(
        plugins: &[(&str, String)],
        containers: Arc<dyn ContainerRuntime>,
        configure: impl FnOnce(&mut RawConfig),
    ) -> ServedHost {
        Self::start_on(0, plugins, containers, configure).await
    }

    /// As [`ServedHost::start`], on a given port (0: any).
    pub async fn start_on(
        port: u16,
        plugins: &[(&str, String)],
        containers: Arc<dyn ContainerRuntime>,
        configure: impl FnOnce(&mut RawConfig),
    ) -> ServedHost {
        Self::start_staged(port, &["restart_container"], plugins, containers, configure).await
    }

    /// As [`ServedHost::start_on`], with these guest components in the
    /// plugins directory instead of the bundled restart one.
    pub async fn start_staged(
        port: u16,
        components: &[&str],
        plugins: &[(&str, String)],
        containers: Arc<dyn ContainerRuntime>,
        configure: impl FnOnce(&mut RawConfig),
    ) -> ServedHost {
        let dir = tempfile::tempdir().unwrap();
        crate::support::stage_plugins(dir.path(), components, plugins);
        let mut config = crate::support::test_config(dir.path());
        configure(&mut config);
        let config = config.validate().unwrap();
        Self::serve(port, dir, config, containers).await
    }

    async fn serve(
        port: u16,
        dir: TempDir,
        config: autoheal::config::Config,
        containers: Arc<dyn ContainerRuntime>,
    ) -> ServedHost {
        let host = autoheal::app::start(config, containers).await.unwrap();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        // The server `autoheal serve` runs, with its `[http]` limits.
        let server = tokio::spawn(autoheal::http::serve(
            listener,
            host.clone(),
            std::future::pending(),
        ));
        ServedHost {
            remediator: host.remediator.clone(),
            host,
            url: format!("http://{addr}"),
            dir: Some(dir),
            server,
        }
    }

    /// Stops this host and starts it again on the same directory and
    /// config (trail, `switches.json`), as a restart of the process would;
    /// it serves on a new port. Fails the test if it does not start.
    pub async fn restart(mut self) -> ServedHost {
        self.server.abort();
        self.host.shutdown.cancel();
        // As `autoheal serve` stops: queued actions are left to the next start.
        self.remediator.close_queue();
        self.remediator.drain().await;
        let dir = self.dir.take().expect("a served host has its directory");
        let config = (*self.host.config).clone();
        let containers = self.host.containers.clone();
        drop(self);
        Self::serve(0, dir, config, containers).await
    }

    /// `GET path` over HTTP with the credentials it takes, which must
    /// answer 200: the body (JSON, or a string for text).
    pub async fn get_ok(&self, path: &str) -> Value {
        let (url, path) = (self.url.clone(), path.to_owned());
        let (status, body) = tokio::task::spawn_blocking(move || http(&url, "GET", &path, "").unwrap())
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Events of these kinds from `GET /audit`, over HTTP.
    pub async fn audit(&self, kinds: &str) -> Vec<Value> {
        let body = self.get_ok(&format!("/audit?n=5000&kind={kinds}")).await;
        body["events"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until the audit holds `count` events of these kinds.
    pub async fn wait_for(&self, kinds: &str, count: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.audit(kinds).await;
            if events.len() >= count {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {count} {kinds} events; audit: {:#?}",
                self.audit("").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Posts a webhook straight to the host, as Alertmanager would.
    pub async fn post_alerts(&self, alerts: Value) -> Value {
        let url = self.url.clone();
        let body = json!({ "version": "4", "status": "firing", "receiver": "autoheal", "alerts": alerts })
            .to_string();
        let (status, reply) =
            tokio::task::spawn_blocking(move || http(&url, "POST", "/alert", &body).unwrap())
                .await
                .unwrap();
        assert_eq!(status, 200, "{reply}");
        reply
    }
}

impl Drop for ServedHost {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The host with the bundled plugin and no container engine, and a real
/// Alertmanager that delivers to it and that it acks against.
pub async fn host_with_alertmanager() -> (ServedHost, Alertmanager) {
    let port = free_port();
    let am = Alertmanager::start(&format!("http://127.0.0.1:{port}/alert"));
    let am_url = am.url.clone();
    let host = ServedHost::start_on(
        port,
        &[("crm.toml", crate::support::bundled_manifest())],
        Arc::new(autoheal_containers::NoEngine),
        move |c| c.alertmanager_url = am_url.into(),
    )
    .await;
    (host, am)
}

/// A minimal HTTP/1.1 client (one request per connection).
pub fn http(base: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, Value)> {
    let authorization = crate::support::authorization_for(path);
    http_with(base, method, path, &[("Authorization", &authorization)], body)
}

/// As [`http`], with exactly these extra headers (no credentials unless given).
pub fn http_with(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, Value)> {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let has_host = headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host"));
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !has_host {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    write!(
        stream,
        "{head}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, serde_json::from_str(&body).unwrap_or(Value::String(body))))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}
