//! `docs/replicas/compose.yaml` as shipped, brought up by Debian's
//! `podman-compose`: three etcd members with auth, three autoheal replicas
//! (the image `packaging/Containerfile` makes) and an Alertmanager (images
//! from Debian's binaries, `docs/replicas/images/`). A real alert posted to
//! that Alertmanager reaches every replica and restarts a real busybox
//! container exactly once, counted in Podman's own events and in the
//! replicas' trails.
//!
//! What the test changes, in an override file beside the recipe, is only
//! the network: tests talk to 127.0.0.0/8 alone, so every service runs on
//! the host's network, each on a loopback address of its own under its
//! service name (`extra_hosts`), with its usual port. Debian's
//! podman-compose (1.0.3) adds the project's network even to a
//! `network_mode: host` service, which podman refuses; a `podman` shim
//! (`--podman-path`) drops it. It also does not wait for
//! `service_completed_successfully`, so the test (as the recipe's README
//! says for podman-compose) brings up etcd and `etcd-init` first.
//!
//! Needs Debian's podman-compose, etcd-server, etcd-client and
//! prometheus-alertmanager besides what `deploy.rs` needs.

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::deploy::{autoheal_image, build_image, first_200, podman, repo, run, staged_plugins};
use crate::real::{Podman, free_port, http_with, unique, wait_until};

const WEBHOOK_TOKEN: &str = "compose-webhook-token-0123456789";
const OPERATOR_TOKEN: &str = "compose-operator-token-0123456789";
/// The group the engine's socket is given to, and the replicas run in.
const ENGINE_GID: u32 = 47_011;

const SERVICES: &[&str] = &[
    "e1",
    "e2",
    "e3",
    "etcd-init",
    "alertmanager",
    "autoheal-1",
    "autoheal-2",
    "autoheal-3",
];

/// The images compose.yaml names by default, from Debian's binaries.
fn service_images() {
    let images = repo().join("docs/replicas/images");
    let stage = |binaries: &[(&str, &str)]| {
        let dir = tempfile::tempdir().unwrap();
        for (from, to) in binaries {
            std::fs::copy(from, dir.path().join(to)).unwrap_or_else(|e| {
                panic!("{from}: {e} (apt-get install etcd-server etcd-client prometheus-alertmanager)")
            });
        }
        dir
    };
    let etcd = stage(&[("/usr/bin/etcd", "etcd"), ("/usr/bin/etcdctl", "etcdctl")]);
    build_image(
        "localhost/etcd:3.4",
        &images.join("etcd.Containerfile"),
        etcd.path(),
    );
    let am = stage(&[
        ("/usr/bin/prometheus-alertmanager", "alertmanager"),
        ("/usr/share/prometheus/alertmanager/default.tmpl", "default.tmpl"),
        ("/usr/share/prometheus/alertmanager/email.tmpl", "email.tmpl"),
    ]);
    build_image(
        "localhost/alertmanager:0.25",
        &images.join("alertmanager.Containerfile"),
        am.path(),
    );
}

/// Each service's loopback address, in a /24 of 127.0.0.0/8 picked per run.
struct Addresses {
    prefix: String,
}

impl Addresses {
    fn pick() -> Addresses {
        let n = std::process::id() as usize + free_port() as usize;
        Addresses {
            prefix: format!("127.{}.{}", 100 + n % 150, n / 150 % 250 + 1),
        }
    }

    fn of(&self, service: &str) -> String {
        let host = match service {
            "autoheal-1" => 1,
            "autoheal-2" => 2,
            "autoheal-3" => 3,
            "e1" => 11,
            "e2" => 12,
            "e3" => 13,
            "alertmanager" => 20,
            _ => 30,
        };
        format!("{}.{host}", self.prefix)
    }
}

/// The override: the host's network, each service on its own address.
fn network_override(at: &Addresses) -> String {
    let hosts: Vec<Value> = SERVICES
        .iter()
        .map(|s| Value::String(format!("{s}:{}", at.of(s))))
        .collect();
    let mut services = serde_json::Map::new();
    for service in SERVICES {
        let mut entry = json!({ "network_mode": "host", "extra_hosts": hosts });
        let ip = at.of(service);
        match *service {
            "e1" | "e2" | "e3" => {
                entry["environment"] = json!({
                    "ETCD_LISTEN_CLIENT_URLS": format!("http://{ip}:2379"),
                    "ETCD_LISTEN_PEER_URLS": format!("http://{ip}:2380"),
                });
            }
            "alertmanager" => {
                entry["entrypoint"] = json!(["/bin/alertmanager", format!("--web.listen-address={ip}:9093")]);
            }
            s if s.starts_with("autoheal-") => {
                entry["environment"] = json!({ "AUTOHEAL_LISTEN": format!("{ip}:9009") });
            }
            _ => {}
        }
        services.insert((*service).to_owned(), entry);
    }
    // JSON is YAML.
    json!({ "services": services }).to_string()
}

/// podman as Debian's podman-compose needs it here: runc, and the host's
/// network alone for a `network_mode: host` service.
const PODMAN_SHIM: &str = r#"#!/bin/bash
args=("$@") out=() host=0
for ((i = 0; i < ${#args[@]}; i++)); do
  [[ ${args[i]} == --network && ${args[i+1]} == host ]] && host=1
done
for ((i = 0; i < ${#args[@]}; i++)); do
  if ((host)) && [[ ${args[i]} == --net || ${args[i]} == --network-alias ]]; then
    ((i++)); continue
  fi
  out+=("${args[i]}")
done
exec podman --runtime runc "${out[@]}"
"#;

/// The recipe copied as a user would lay it out, its plugins and secrets
/// made as its README says, brought up; taken down (containers, volumes,
/// network) when dropped.
struct Compose {
    project: String,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Compose {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("podman-compose");
        command
            .current_dir(self.dir.path())
            .arg("--podman-path")
            .arg(self.dir.path().join("podman-shim"))
            .args([
                "--podman-run-args",
                "--ulimit nofile=1024:1024 --ulimit nproc=1024:1024",
            ])
            .args(["-p", &self.project, "-f", "compose.yaml", "-f", "network.yaml"])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    fn container(&self, service: &str) -> String {
        format!("{}_{service}_1", self.project)
    }

    /// A replica's trail, read inside its container.
    fn trail(&self, service: &str) -> Vec<Value> {
        run(podman().args([
            "exec",
            &self.container(service),
            "cat",
            "/var/lib/autoheal/audit.jsonl",
        ]))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
    }

    /// What each replica recorded and Alertmanager logged: the story of a
    /// failure.
    fn diagnosis(&self) -> String {
        let mut text = String::new();
        for replica in ["autoheal-1", "autoheal-2", "autoheal-3"] {
            let out = podman()
                .args([
                    "exec",
                    &self.container(replica),
                    "cat",
                    "/var/lib/autoheal/audit.jsonl",
                ])
                .output()
                .unwrap();
            text += &format!(
                "--- {replica}'s trail:\n{}\n",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let am = self.logs("alertmanager");
        let tail: Vec<&str> = am.lines().rev().take(15).collect();
        text += &format!(
            "--- alertmanager:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
        text
    }

    /// Polls `check` for up to `secs`; on a timeout fails with the diagnosis.
    fn wait<T>(&self, what: &str, secs: u64, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(value) = check() {
                return value;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "timed out after {secs} s waiting for {what}\n{}",
                    self.diagnosis()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn logs(&self, service: &str) -> String {
        let out = podman()
            .args(["logs", &self.container(service)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let quiet = |mut command: Command| {
            let _ = command.stdout(Stdio::null()).stderr(Stdio::null()).status();
        };
        quiet(self.command(&["down"]));
        for volume in ["e1", "e2", "e3", "am", "a1", "a2", "a3"] {
            let mut rm = podman();
            rm.args(["volume", "rm", "-f", &format!("{}_{volume}", self.project)]);
            quiet(rm);
        }
        let mut rm = podman();
        rm.args(["network", "rm", "-f", &format!("{}_default", self.project)]);
        quiet(rm);
    }
}

fn restart_by_label(container: &str) -> String {
    format!(
        r#"name = "restart-by-label"
version = "0.1.0"
component = "restart_by_label.wasm"

[match]
alertnames = ["ContainerDown"]

[capabilities]
containers = ["{container}"]

[limits]
timeout_ms = 20000
memory_mb = 16
cooldown = "10m"
stop_timeout_sec = 1

[cooldown_key]
labels = ["container"]

[config]
label = "container"
allow = "{container}"
# The container is seconds old: the plugin's young-container guard off.
min_uptime_sec = "0"
"#
    )
}

fn count(trail: &[Value], kind: &str) -> usize {
    trail.iter().filter(|e| e["kind"] == kind).count()
}

#[test]
fn deploy_compose_recipe_routes_an_alert_to_three_replicas_and_restarts_once() {
    autoheal_image();
    service_images();

    // The engine the replicas restart through, its socket given to a group
    // (the replicas run as the image's user in that group), and the
    // container a real alert is about.
    let engine = Podman::start();
    std::os::unix::fs::chown(&engine.socket, None, Some(ENGINE_GID)).unwrap();
    std::fs::set_permissions(
        &engine.socket,
        std::os::unix::fs::PermissionsExt::from_mode(0o660),
    )
    .unwrap();
    let target = unique("deploy-crm");
    engine.run_httpd(&target, free_port());
    let started = engine.started_at(&target);

    // The recipe, as its README lays it out.
    let dir = tempfile::tempdir().unwrap();
    let recipe = repo().join("docs/replicas");
    for file in ["compose.yaml", "autoheal.toml", "alertmanager.yml"] {
        std::fs::copy(recipe.join(file), dir.path().join(file)).unwrap();
    }
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(
        staged_plugins().join("restart_by_label.wasm"),
        plugins.join("restart_by_label.wasm"),
    )
    .unwrap();
    std::fs::write(plugins.join("restart-by-label.toml"), restart_by_label(&target)).unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    for (name, value) in [
        ("etcd-root-password", "root-password-0123456789"),
        ("etcd-autoheal-password", "autoheal-password-0123456789"),
        (
            "cluster-secret",
            "5e3f9c1a7b2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f",
        ),
        ("webhook-token", WEBHOOK_TOKEN),
        ("operator-token", OPERATOR_TOKEN),
    ] {
        std::fs::write(secrets.join(name), format!("{value}\n")).unwrap();
    }
    let at = Addresses::pick();
    std::fs::write(dir.path().join("network.yaml"), network_override(&at)).unwrap();
    let shim = dir.path().join("podman-shim");
    std::fs::write(&shim, PODMAN_SHIM).unwrap();
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let compose = Compose {
        project: unique("deploy").replace('-', ""),
        dir,
        env: vec![
            (
                "AUTOHEAL_ENGINE_SOCKET".into(),
                engine.socket.display().to_string(),
            ),
            ("AUTOHEAL_ENGINE_GID".into(), ENGINE_GID.to_string()),
            ("AUTOHEAL_ENABLED".into(), "true".into()),
            ("AUTOHEAL_DRY_RUN".into(), "false".into()),
        ],
    };
    run(&mut compose.command(&["up", "-d", "e1", "e2", "e3", "etcd-init"]));
    let init = run(podman().args(["wait", &compose.container("etcd-init")]));
    assert_eq!(init, "0", "etcd-init failed:\n{}", compose.logs("etcd-init"));
    run(&mut compose.command(&["up", "-d"]));

    let replicas = ["autoheal-1", "autoheal-2", "autoheal-3"];
    for replica in replicas {
        let base = format!("http://{}:9009", at.of(replica));
        first_200(&base, &compose.container(replica), Duration::from_secs(240));
        // Logged in to etcd as the recipe's user, with auth on.
        wait_until(
            &format!("{replica} to see the cluster"),
            Duration::from_secs(60),
            || {
                let (_, status) = http_with(&base, "GET", "/", &[], "").ok()?;
                (status["cluster"]["available"] == true).then_some(())
            },
        );
    }
    // etcd is not open: without the recipe's users, it refuses.
    let anonymous = podman()
        .args(["exec", &compose.container("e1"), "etcdctl", "--endpoints"])
        .arg(format!("http://{}:2379", at.of("e1")))
        .args(["get", "--prefix", "/autoheal"])
        .output()
        .unwrap();
    assert!(
        !anonymous.status.success(),
        "etcd answered an anonymous read: {}",
        String::from_utf8_lossy(&anonymous.stdout)
    );

    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let am = format!("http://{}:9093", at.of("alertmanager"));
    compose.wait("Alertmanager to answer", 60, || {
        http_with(&am, "GET", "/-/ready", &[], "")
            .ok()
            .filter(|(code, _)| *code == 200)
    });
    let alert = json!([{
        "labels": { "alertname": "ContainerDown", "container": target, "severity": "page" },
        "annotations": { "autoheal": "true", "summary": "the container is down" },
    }]);
    let (code, body) = http_with(&am, "POST", "/api/v2/alerts", &[], &alert.to_string()).unwrap();
    assert_eq!(code, 200, "{body}");

    // Routed to every replica, acted on by one.
    compose.wait("Podman to restart the container", 90, || {
        (!engine.restart_events(&since, Some(&target)).is_empty()).then_some(())
    });
    compose.wait("every replica to receive the alert", 60, || {
        replicas
            .iter()
            .all(|r| count(&compose.trail(r), "webhook_received") >= 1)
            .then_some(())
    });
    // Long enough for a second restart by another replica to show.
    std::thread::sleep(Duration::from_secs(5));
    let restarts = engine.restart_events(&since, Some(&target));
    assert_eq!(restarts.len(), 1, "restarted more than once: {restarts:?}");
    assert_ne!(
        engine.started_at(&target),
        started,
        "the container was started again"
    );
    let trails: Vec<Vec<Value>> = replicas.iter().map(|r| compose.trail(r)).collect();
    let acted: usize = trails.iter().map(|t| count(t, "action_ok")).sum();
    assert_eq!(acted, 1, "one action across the replicas: {trails:?}");
    let claimed: usize = trails
        .iter()
        .flatten()
        .filter(|e| e["kind"] == "decision_skip" && e["reason"] == "claimed")
        .count();
    assert_eq!(claimed, 2, "the two others saw the claim: {trails:?}");
    let action = trails
        .iter()
        .flatten()
        .find(|e| e["kind"] == "action_ok")
        .unwrap();
    assert_eq!(action["target"], target.as_str(), "{action}");
    assert_eq!(action["dry_run"], false, "{action}");
}
