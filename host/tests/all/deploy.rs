//! The deployment artifacts as shipped, built and run with Podman: the image
//! (`packaging/Containerfile`, built by `packaging/image.sh` as `cargo
//! xtask image` builds it) and the Debian package (`packaging/deb/build.sh`,
//! as `cargo xtask deb` builds it), on a base image made from Debian's
//! packages (`mmdebstrap` → `podman import`) and tagged as the name the
//! Containerfile's `FROM` uses, so the file stays what users build with.
//! The compose recipe's test is `deploy_compose.rs`.
//!
//! Needs Debian's podman, runc and mmdebstrap (which fetches from Debian's
//! archive), besides what `real.rs` needs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::real::{free_port, http_with, unique};

/// The image the tests build from the repository's Containerfile, under the
/// name `docs/replicas/compose.yaml` runs.
pub(crate) const AUTOHEAL_IMAGE: &str = "localhost/autoheal:latest";

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
}

/// The bundled plugins as `cargo xtask build-plugins` stages them.
pub(crate) fn staged_plugins() -> PathBuf {
    let dir = target_dir().join("plugins.d");
    assert!(
        dir.join("restart_container.wasm").exists(),
        "{} has no plugins: run `cargo xtask build-plugins` (or the suite with `cargo xtask test`)",
        dir.display()
    );
    dir
}

/// `podman` as it works on these machines (runc; DESIGN.md).
pub(crate) fn podman() -> Command {
    let mut command = Command::new("podman");
    command.args(["--runtime", "runc"]);
    command
}

/// Flags every container here needs: the host's network (tests talk to
/// 127.0.0.0/8 only) and explicit ulimits, without which runc fails here.
pub(crate) const RUN_FLAGS: &[&str] = &[
    "--network",
    "host",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

/// Runs `command`, failing the test with its output when it fails; its
/// stdout, trimmed.
pub(crate) fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The name `packaging/Containerfile`'s `FROM` gives its base, as Podman
/// stores a short name (`debian:bookworm-slim` →
/// `docker.io/library/debian:bookworm-slim`).
fn base_name() -> String {
    let containerfile = std::fs::read_to_string(repo().join("packaging/Containerfile")).unwrap();
    let from = containerfile
        .lines()
        .find_map(|line| line.strip_prefix("FROM "))
        .expect("the Containerfile has a FROM line")
        .trim();
    match from.split_once('/') {
        Some(_) => from.to_owned(),
        None => format!("docker.io/library/{from}"),
    }
}

/// The base image every Containerfile here starts from, made once per
/// machine from Debian's packages: no registry is reachable here. Kept
/// between runs (it takes ~20 s); a run finds it by name.
pub(crate) fn base_image() -> String {
    static DONE: Mutex<bool> = Mutex::new(false);
    let name = base_name();
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if *done {
        return name;
    }
    let exists = podman().args(["image", "exists", &name]).status();
    if !exists.map(|s| s.success()).unwrap_or(false) {
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("rootfs.tar");
        run(Command::new("mmdebstrap")
            .args(["--variant=minbase", "--quiet", "bookworm"])
            .arg(&tar));
        run(podman().arg("import").arg(&tar).arg(&name));
    }
    *done = true;
    name
}

/// The autoheal image, built once per test process from the debug binary
/// and the staged plugins by the script `cargo xtask image` runs.
pub(crate) fn autoheal_image() -> &'static str {
    static DONE: Mutex<bool> = Mutex::new(false);
    base_image();
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if !*done {
        run(Command::new(repo().join("packaging/image.sh"))
            .arg(env!("CARGO_BIN_EXE_autoheal"))
            .arg(staged_plugins())
            .arg(AUTOHEAL_IMAGE)
            .arg(env!("CARGO_PKG_VERSION"))
            .env(
                "PODMAN_BUILD_FLAGS",
                "--runtime runc --pull=never --network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024",
            ));
        *done = true;
    }
    AUTOHEAL_IMAGE
}

/// Builds `containerfile` with `context` as `tag` (the base from this
/// machine only).
pub(crate) fn build_image(tag: &str, containerfile: &Path, context: &Path) {
    base_image();
    run(podman()
        .args(["build", "--pull=never", "--format", "docker", "--network", "host"])
        .args(["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"])
        .args(["--tag", tag, "--file"])
        .arg(containerfile)
        .arg(context));
}

/// A container that is removed when the test ends, however it ends.
pub(crate) struct Container(pub String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rm", "-f", "-t", "0", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A compile cache on the machine for the containers of one test, kept
/// between runs like the other tests' (`support::shared_cache_dir`): the
/// bundled Python and JavaScript plugins take a minute or more to compile on
/// a busy machine. The key file sits beside the cache, both in the mounted
/// directory, owned by `uid` (the container's user).
pub(crate) fn container_cache(test: &str, uid: u32) -> (PathBuf, [String; 2]) {
    let dir = std::env::temp_dir().join(format!("autoheal-deploy-cache-{test}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).unwrap();
    let mount = format!("{}:/var/cache/autoheal-test", dir.display());
    let env = "AUTOHEAL_CACHE_DIR=/var/cache/autoheal-test/cache".to_owned();
    (dir, [mount, env])
}

/// `GET /` at `base` until it answers 200 (a host compiling its plugins
/// answers 503 first); the body.
pub(crate) fn first_200(base: &str, container: &str, timeout: Duration) -> Value {
    let mut last;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match http_with(base, "GET", "/", &[], "") {
            Ok((200, body)) => return body,
            Ok((code, body)) => last = format!("{code} {body}"),
            Err(e) => last = e.to_string(),
        }
        if std::time::Instant::now() > deadline {
            let logs = podman().args(["logs", container]).output().unwrap();
            panic!(
                "{base}/ never answered 200 within {timeout:?} (last: {last}); {container}'s log:\n{}",
                String::from_utf8_lossy(&logs.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn plugin_names(status: &Value) -> Vec<String> {
    let mut names: Vec<String> = status["plugins"]
        .as_array()
        .unwrap_or_else(|| panic!("GET / lists plugins: {status}"))
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names
}

/// The bundled plugins' names, from their manifests.
fn bundled_plugin_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(staged_plugins())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let manifest: toml::Value = toml::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            manifest["name"].as_str().unwrap().to_owned()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn deploy_image_runs_as_a_user_serves_its_plugins_and_passes_its_healthcheck() {
    let image = autoheal_image();
    let labels = run(podman().args([
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}} {{.Config.User}} {{json .Config.Healthcheck.Test}}",
        image,
    ]));
    assert!(
        labels.contains(r#""org.opencontainers.image.title":"autoheal""#)
            && labels.contains(&format!(
                r#""org.opencontainers.image.version":"{}""#,
                env!("CARGO_PKG_VERSION")
            )),
        "OCI labels: {labels}"
    );
    assert!(
        labels.contains(" autoheal ") && labels.contains(r#"["CMD","autoheal","status"]"#),
        "a user of its own and the binary as its health check: {labels}"
    );

    let port = free_port();
    let name = Container(unique("deploy-image"));
    let (_, [cache, cache_env]) = container_cache("image", 10001);
    run(podman()
        .args(["run", "-d", "--name", &name.0])
        .args(RUN_FLAGS)
        .args(["-v", &cache, "-e", &cache_env])
        // Its own loopback port: the image listens on 0.0.0.0:9009, which
        // the host's network may not have free.
        .args(["-e", &format!("AUTOHEAL_LISTEN=127.0.0.1:{port}")])
        .args(["-e", &format!("AUTOHEAL_URL=http://127.0.0.1:{port}")])
        .arg(image));
    let base = format!("http://127.0.0.1:{port}");
    let status = first_200(&base, &name.0, LOADING);
    assert_eq!(plugin_names(&status), bundled_plugin_names(), "{status}");
    assert_eq!(status["dry_run"], true, "safe defaults: {status}");

    let user = run(podman().args(["exec", &name.0, "id", "-u"]));
    assert_eq!(user, "10001", "the host does not run as root");
    let health = podman().args(["healthcheck", "run", &name.0]).output().unwrap();
    assert!(
        health.status.success(),
        "the image's health check fails on a serving host: {}",
        String::from_utf8_lossy(&health.stderr)
    );
    let state = run(podman().args(["inspect", "--format", "{{.State.Health.Status}}", &name.0]));
    assert_eq!(state, "healthy");

    // The check can fail: the same image with no host serving is unhealthy.
    let idle = Container(unique("deploy-image-idle"));
    run(podman()
        .args(["run", "-d", "--name", &idle.0])
        .args(RUN_FLAGS)
        .args(["-e", &format!("AUTOHEAL_URL=http://127.0.0.1:{}", free_port())])
        .args(["--entrypoint", "sleep", image, "infinity"]));
    let refused = podman().args(["healthcheck", "run", &idle.0]).output().unwrap();
    assert_eq!(
        refused.status.code(),
        Some(1),
        "no host, no health: {}",
        String::from_utf8_lossy(&refused.stdout)
    );
}

/// How long a host may take to load the bundled plugins: compiling the
/// Python and JavaScript ones takes minutes on a busy two-core machine when
/// the cache is cold.
const LOADING: Duration = Duration::from_secs(420);

/// The package, built from the debug binary by `packaging/deb/build.sh`.
fn debian_package(out: &Path) -> PathBuf {
    let deb = run(Command::new(repo().join("packaging/deb/build.sh"))
        .arg(env!("CARGO_BIN_EXE_autoheal"))
        .arg(staged_plugins())
        .arg(out)
        .arg(env!("CARGO_PKG_VERSION")));
    PathBuf::from(deb)
}

#[test]
fn deploy_debian_package_installs_in_a_fresh_root_and_serves_as_configured() {
    let dir = tempfile::tempdir().unwrap();
    let deb = debian_package(dir.path());
    let base = base_image();

    // A fresh Debian root (the base image), the package installed with
    // dpkg -i, then the host started with the config the package installs.
    let port = free_port();
    let name = Container(unique("deploy-deb"));
    let (_, [cache, cache_env]) = container_cache("deb", 0);
    let script = format!(
        "dpkg -i /tmp/autoheal.deb && autoheal --version >/tmp/version && \
         exec autoheal serve --config /etc/autoheal/autoheal.toml --listen 127.0.0.1:{port}"
    );
    run(podman()
        .args(["run", "-d", "--name", &name.0])
        .args(RUN_FLAGS)
        .args(["-v", &cache, "-e", &cache_env])
        .arg("-v")
        .arg(format!("{}:/tmp/autoheal.deb:ro", deb.display()))
        .args([&base, "sh", "-ec", &script]));
    let status = first_200(&format!("http://127.0.0.1:{port}"), &name.0, LOADING);
    // The config points at the packaged plugins, and keeps the safe defaults.
    assert_eq!(plugin_names(&status), bundled_plugin_names(), "{status}");
    assert_eq!(status["enabled"], false, "{status}");
    assert_eq!(status["dry_run"], true, "{status}");

    let exec = |script: &str| run(podman().args(["exec", &name.0, "sh", "-ec", script]));
    assert_eq!(
        exec("cat /tmp/version"),
        format!("autoheal {}", env!("CARGO_PKG_VERSION"))
    );
    // The trail is where the unit's StateDirectory= is.
    exec("test -s /var/lib/autoheal/audit.jsonl");
    let conffiles = exec("dpkg-query -W -f='${Conffiles}' autoheal");
    assert!(
        conffiles.contains("/etc/autoheal/autoheal.toml") && conffiles.contains("/etc/default/autoheal"),
        "the config survives upgrades: {conffiles}"
    );
    let listing = exec("dpkg -L autoheal");
    for path in [
        "/usr/bin/autoheal",
        "/lib/systemd/system/autoheal.service",
        "/usr/share/man/man1/autoheal.1.gz",
        "/usr/share/man/man1/autoheal-serve.1.gz",
        "/usr/share/bash-completion/completions/autoheal",
        "/usr/share/zsh/vendor-completions/_autoheal",
        "/usr/share/fish/vendor_completions.d/autoheal.fish",
        "/usr/lib/autoheal/plugins.d/restart_container.wasm",
    ] {
        assert!(
            listing.lines().any(|l| l == path),
            "{path} is not in the package:\n{listing}"
        );
    }
    // The unit's SupplementaryGroups= needs the group; postinst made it.
    exec("getent group docker");
    let completion = exec("cat /usr/share/bash-completion/completions/autoheal");
    assert!(completion.contains("autoheal"), "{completion}");
}
