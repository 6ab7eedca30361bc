//! Shared test scaffolding: guest components, plugin directories, engines
//! with an in-process container runtime, and reading events back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use autoheal::app::Host;
use autoheal::config::RawConfig;
use autoheal::remediation::{AlertDecision, Remediator};
use autoheal_containers::FakeRuntime;
use autoheal_core::alert::Alert;
use autoheal_core::audit::{AuditFilter, read_tail};
use autoheal_core::event::{EventBody, WebhookReceived};
use serde_json::{Value, json};
use tempfile::TempDir;

/// A guest component built by `cargo xtask build-plugins`.
pub fn guest(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("wasm32-wasip2/plugin").join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the guest components first with `cargo xtask build-plugins` (or run the suite with `cargo xtask test`)",
        path.display()
    );
    path
}

/// One compile cache for every test process and run on this machine, so
/// each component compiles once (a Python or JavaScript one takes seconds)
/// and the cache does not grow with every run. Sharing is safe: artifacts
/// are keyed by the component's hash and the engine's settings, written to
/// a temporary name and renamed, and authenticated when read (under the
/// key beside it, which every test process shares as well).
pub fn shared_cache_dir() -> PathBuf {
    std::env::temp_dir().join("autoheal-test-cache")
}

/// A manifest for `component` with the given extra TOML appended.
pub fn manifest(
    name: &str,
    component: &str,
    alertnames: &[&str],
    containers: &[&str],
    extra: &str,
) -> String {
    format!(
        "name = {name:?}\nversion = \"1.0.0\"\ncomponent = {component:?}\n\
         [match]\nalertnames = {alertnames:?}\n\
         [capabilities]\ncontainers = {containers:?}\n{extra}\n"
    )
}

/// The bundled component restarting `crm-api` for `TcpEndpointDownFast`,
/// with no uptime guard; `extra` is TOML put before its `[config]`.
pub fn crm_plugin_with(extra: &str) -> (&'static str, String) {
    (
        "restart.toml",
        manifest(
            "restart-crm-api",
            "restart_container.wasm",
            &["TcpEndpointDownFast"],
            &["crm-api"],
            &format!("{extra}\n[config]\ncontainer = \"crm-api\"\nmin_uptime_sec = 0"),
        ),
    )
}

/// Manifest TOML that turns the target cooldown off, for tests in which
/// several alerts restart the one fake `crm-api` on purpose.
pub const NO_TARGET_COOLDOWN: &str = "[limits]\ntarget_cooldown = \"0s\"";

/// [`crm_plugin_with`] nothing extra.
pub fn crm_plugin() -> (&'static str, String) {
    crm_plugin_with("")
}

/// A manifest for the misbehaving fixture in one of its modes.
pub fn fixture(name: &str, mode: &str, limits: &str, config: &str) -> String {
    manifest(
        name,
        "misbehave.wasm",
        &[name],
        &["crm-api"],
        // A zero stop timeout lets tests give fixtures deadlines of a few ms.
        &format!("[limits]\nstop_timeout_sec = 0\n{limits}\n[config]\nmode = {mode:?}\n{config}"),
    )
}

/// Sends `alerts` to `remediator` the way `POST /alert` does, through
/// [`Remediator::process_webhook`]: `webhook_received` and the decisions
/// committed durably before any action starts, and the claims in a
/// cluster. Returns the decisions; the actions run in the background.
pub async fn webhook(remediator: &Arc<Remediator>, alerts: Vec<Alert>) -> Vec<AlertDecision> {
    let received = EventBody::WebhookReceived(WebhookReceived {
        alerts: alerts.len(),
        decisions: None,
        group_key: None,
        receiver: None,
        status: None,
        truncated_alerts: None,
    });
    remediator
        .process_webhook(received, alerts)
        .await
        .expect("the webhook is recorded")
}

pub struct Harness {
    pub dir: TempDir,
    pub host: Host,
    /// `host.remediator`, which most tests drive.
    pub remediator: Arc<Remediator>,
    pub fake: Arc<FakeRuntime>,
}

impl Harness {
    pub fn plugins_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    pub fn audit_path(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    /// Sends these alerts to the remediator as a webhook ([`webhook`]) and
    /// waits for every action to finish.
    pub async fn process(&self, alerts: Value) -> Vec<Value> {
        let alerts = serde_json::from_value(alerts).expect("test alerts parse");
        let decisions = webhook(&self.remediator, alerts).await;
        self.remediator.drain().await;
        decisions
            .iter()
            .map(|d| serde_json::to_value(d).unwrap())
            .collect()
    }

    /// Sends `request` to the host's HTTP surface in-process: the status,
    /// and the body as JSON (`Null` if it is not JSON).
    pub async fn send(&self, request: axum::http::Request<axum::body::Body>) -> (u16, Value) {
        let (status, bytes) = self.send_raw(request).await;
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// As [`Harness::send`], the body as it came.
    async fn send_raw(&self, request: axum::http::Request<axum::body::Body>) -> (u16, Vec<u8>) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let response = autoheal::http::router(self.host.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, bytes.to_vec())
    }

    /// `GET /metrics`, which must answer 200, as text.
    pub async fn metrics_text(&self) -> String {
        let request = axum::http::Request::get("/metrics")
            .header("authorization", authorization_for("/metrics"))
            .body(axum::body::Body::empty())
            .unwrap();
        let (status, bytes) = self.send_raw(request).await;
        assert_eq!(status, 200);
        String::from_utf8(bytes).unwrap()
    }

    /// `GET /`, which must answer 200 with JSON.
    pub async fn status_page(&self) -> Value {
        let request = axum::http::Request::get("/")
            .body(axum::body::Body::empty())
            .unwrap();
        let (status, page) = self.send(request).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.is_object(), "GET / is not JSON: {page}");
        page
    }

    /// Every event of these kinds so far (all kinds if empty), oldest first.
    pub fn events(&self, kinds: &[&str]) -> Vec<Value> {
        let filter = AuditFilter {
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            ..Default::default()
        };
        read_tail(&self.audit_path(), &filter, 5000).unwrap()
    }

    /// Waits up to `secs` for `count` events of `kind` (background work:
    /// expiry, verification); all of them, oldest first.
    pub async fn wait_for(&self, kind: &str, count: usize, secs: u64) -> Vec<Value> {
        for _ in 0..secs * 10 {
            let events = self.events(&[kind]);
            if events.len() >= count {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "fewer than {count} {kind} within {secs} s: {:#?}",
            self.events(&[])
        );
    }

    /// The single event of `kind`; fails the test if there is not exactly one.
    pub fn only(&self, kind: &str) -> Value {
        let events = self.events(&[kind]);
        assert_eq!(events.len(), 1, "expected one {kind} event, got {events:#?}");
        events.into_iter().next().unwrap()
    }

    /// Starts a new host on the same directory (a host restart).
    pub async fn restart(self, configure: impl FnOnce(&mut RawConfig)) -> Harness {
        let Harness {
            dir,
            fake,
            host,
            remediator,
        } = self;
        remediator.drain().await;
        drop((host, remediator));
        Harness::start(dir, fake, configure).await
    }

    /// A host on `dir` with `fake` as its engine.
    pub async fn start(
        dir: TempDir,
        fake: Arc<FakeRuntime>,
        configure: impl FnOnce(&mut RawConfig),
    ) -> Harness {
        let host = start_host(dir.path(), fake.clone(), configure).await;
        Harness {
            dir,
            remediator: host.remediator.clone(),
            host,
            fake,
        }
    }
}

/// `DIR/plugins` with these guest components (`NAME.wasm`, from the guest
/// build) and manifests (file name, text); returns its path.
pub fn stage_plugins(dir: &Path, components: &[&str], manifests: &[(&str, String)]) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for component in components {
        std::fs::copy(guest(component), plugins.join(format!("{component}.wasm"))).unwrap();
    }
    for (file, text) in manifests {
        std::fs::write(plugins.join(file), text).unwrap();
    }
    plugins
}

/// Plugins as (manifest file name, manifest text); components named by the
/// manifests are copied from the guest build.
pub async fn harness(plugins: &[(&str, String)], configure: impl FnOnce(&mut RawConfig)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    stage_plugins(
        dir.path(),
        &["restart_container", "misbehave", "wrong_world", "plugin_v0_1"],
        plugins,
    );
    let fake = Arc::new(FakeRuntime::new());
    fake.add_running("crm-api", Duration::from_secs(3600));
    fake.add_running("db", Duration::from_secs(3600));
    Harness::start(dir, fake, configure).await
}

/// The webhook token every test host takes (Alertmanager sends it too).
pub const WEBHOOK_TOKEN: &str = "test-webhook-token-0123456789";
/// The operator token every test host takes.
pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789";

/// `Authorization` for a request to `path`: the webhook token for
/// `/alert`, the operator token (which also reads) for the rest.
pub fn authorization_for(path: &str) -> String {
    let token = if path.starts_with("/alert") {
        WEBHOOK_TOKEN
    } else {
        OPERATOR_TOKEN
    };
    format!("Bearer {token}")
}

pub fn test_config(dir: &Path) -> RawConfig {
    let mut config = RawConfig {
        audit_path: dir.join("audit.jsonl"),
        plugins_dir: dir.join("plugins"),
        cache_dir: shared_cache_dir(),
        ..RawConfig::default()
    };
    config.sandbox.max_concurrent = 4;
    // Components are compiled by the `autoheal` binary run as a compiler;
    // the test binary is not one.
    config.sandbox.compiler = Some(env!("CARGO_BIN_EXE_autoheal").into());
    config.auth.webhook_tokens = vec![WEBHOOK_TOKEN.into()];
    config.auth.operator_tokens = vec![OPERATOR_TOKEN.into()];
    // No test posts its own alerts to whatever Alertmanager the machine
    // runs; the notification tests aim theirs at one they start.
    config.notify.enabled = false;
    config
}

async fn start_host(dir: &Path, fake: Arc<FakeRuntime>, configure: impl FnOnce(&mut RawConfig)) -> Host {
    let mut config = test_config(dir);
    configure(&mut config);
    let config = config.validate().unwrap();
    let host = autoheal::app::start(config, fake).await.expect("host starts");
    host.remediator.drain().await;
    host
}

/// Config that executes for real.
pub fn real(config: &mut RawConfig) {
    config.enabled = true;
    config.dry_run = false;
}

/// An Alertmanager alert as JSON.
pub fn alert(alertname: &str, status: &str, annotations: Value) -> Value {
    json!({
        "status": status,
        "labels": { "alertname": alertname, "service": "crm-api", "instance": "crm-api:8000" },
        "annotations": annotations,
        "startsAt": "2026-11-23T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example/graph",
    })
}

pub fn opted_in(alertname: &str) -> Value {
    alert(alertname, "firing", json!({ "autoheal": "true" }))
}

/// The bundled manifest, as shipped.
pub fn bundled_manifest() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/restart-container/restart-crm-api.toml"),
    )
    .expect("bundled manifest exists")
}

/// `autoheal serve` on `addr` from `dir` (its `autoheal.toml`, `plugins/`
/// and `audit.jsonl`), compiling into `cache`, acting for real on the
/// engine at `socket`, with the test tokens; quiet. The caller adds what
/// else it needs and spawns it.
pub fn serve_command(dir: &Path, addr: &str, cache: &Path, socket: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_autoheal"));
    command
        .args(["serve", "--listen", addr, "--config"])
        .arg(dir.join("autoheal.toml"))
        .arg("--plugins-dir")
        .arg(dir.join("plugins"))
        .arg("--audit-path")
        .arg(dir.join("audit.jsonl"))
        .arg("--cache-dir")
        .arg(cache)
        .env("AUTOHEAL_ENABLED", "true")
        .env("AUTOHEAL_DRY_RUN", "false")
        .env("AUTOHEAL_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
        .env("AUTOHEAL_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env(
            "AUTOHEAL_CONTAINER_ENGINE",
            format!("unix://{}", socket.display()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    command
}

/// The value of `series` (name and labels, as exposed) in a `/metrics`
/// text; panics, showing the text, when it is absent. Most series exist from
/// the first scrape at 0, so a test asserts their value, not their presence.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{metrics}"))
}
