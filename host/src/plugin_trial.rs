//! A trial run of a plugin: the same sandbox as the server, always dry-run,
//! and a report of everything the plugin did. Used by `autoheal plugin test`
//! and `POST /plugins/{name}/test`; its reads go to the real services or
//! to recorded answers (`crate::recorded`, which builds on this module).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

use crate::config::Config;
use crate::remediation::{Cooldowns, Verdict, decide};
use autoheal_containers::{ContainerInfo, ContainerRuntime, FakeRuntime};
use autoheal_core::alert::{Alert, WebhookPayload};
use autoheal_core::util::unix_now;
use autoheal_sandbox::PluginRuntime;
use autoheal_sandbox::capability::{
    Breakers, ExecutionMode, HostServices, HttpServices, HttpTransport, MemoryStateStore, NetTransport,
    NoIntentLog, NoPrometheus, PrometheusSource, StateMap, StateStore, StoreError,
};
use autoheal_sandbox::manifest::{Manifest, ManifestBounds};
use autoheal_sandbox::registry::{Plugin, PluginFileError, PluginSet};

use autoheal_api::alert::Decision;
pub use autoheal_api::plugins::TestReport;

/// Where a trial's reads go: `http.request`'s transport and the
/// Prometheus its queries ask, and the reads that had no recorded answer.
#[derive(Clone)]
pub struct TrialReads {
    /// Resolves names and answers GET and HEAD (effects never reach it:
    /// the gate records them in dry-run).
    pub http: Arc<dyn HttpTransport>,
    /// Answers queries.
    pub prometheus: Arc<dyn PrometheusSource>,
    /// The reads that had no recorded answer, when answers are recorded.
    pub unanswered: Option<Arc<Unanswered>>,
}

impl TrialReads {
    /// The real services, as the server reads them: the network, and the
    /// config's `prometheus_url` (one that cannot be set up answers every
    /// query failed). `POST /plugins/{name}/test` and `--live-reads`.
    pub fn live(config: &Config) -> Self {
        let prometheus: Arc<dyn PrometheusSource> =
            match crate::prom_queries::PluginPrometheus::from_config(config) {
                Ok(prometheus) => Arc::new(prometheus),
                Err(e) => {
                    tracing::warn!(error = %e, "the trial's queries will fail");
                    Arc::new(NoPrometheus)
                }
            };
        Self {
            http: Arc::new(NetTransport),
            prometheus,
            unanswered: None,
        }
    }
}

/// The reads of one trial run that had no answer (`GET https://…`,
/// `PromQL up`), in order, each once: the report lists them.
#[derive(Debug, Default)]
pub struct Unanswered(Mutex<Vec<String>>);

impl Unanswered {
    /// Adds `what`, unless it is listed already.
    pub fn add(&self, what: String) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !list.contains(&what) {
            list.push(what);
        }
    }

    /// The reads listed so far.
    pub fn list(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Runs `plugin` on `alert` in dry-run and reports, its reads going to the
/// real services ([`TrialReads::live`]). The plugin runs even when the
/// engine would skip the alert, so that its behaviour can be seen. Its
/// state calls go to `state`, the trial's own copy
/// ([`MemoryStateStore::scratch`]), whose end the report shows.
pub async fn run(
    runtime: &PluginRuntime,
    plugin: &Arc<Plugin>,
    alert: Alert,
    containers: Arc<dyn ContainerRuntime>,
    config: &Config,
    state: Arc<MemoryStateStore>,
) -> TestReport {
    let reads = TrialReads::live(config);
    run_with(runtime, plugin, alert, containers, config, state, reads).await
}

/// [`run`], its reads going to `reads` (recorded answers, `plugin test`:
/// `crate::recorded::trial_reads`).
pub async fn run_with(
    runtime: &PluginRuntime,
    plugin: &Arc<Plugin>,
    mut alert: Alert,
    containers: Arc<dyn ContainerRuntime>,
    config: &Config,
    state: Arc<MemoryStateStore>,
    reads: TrialReads,
) -> TestReport {
    alert.ensure_fingerprint();
    let set = PluginSet::new(vec![plugin.clone()], Vec::new());
    let verdict = decide(&alert, &set, &Cooldowns::default(), config, unix_now())
        .into_iter()
        .next();
    let (decision, skip_reason, skip_detail) = match verdict {
        Some(Verdict::Skip { reason, detail, .. }) => (Decision::Skip, Some(reason), Some(detail)),
        _ => (Decision::Act, None, None),
    };
    let services = HostServices {
        containers,
        // Dry-run never reaches the breakers; they are here because the gate needs them.
        breakers: Breakers::with_limit(u32::MAX),
        intents: Arc::new(NoIntentLog),
        // Reads are performed (on the network or from recorded answers);
        // effects are recorded, never sent (dry-run).
        http: HttpServices {
            transport: reads.http,
            secrets: config.secrets.clone(),
        },
        prometheus: reads.prometheus,
        state: state.clone(),
    };
    let invocation = runtime
        .invoke(
            &plugin.component,
            &plugin.manifest,
            &alert,
            ExecutionMode::DryRun,
            services,
        )
        .await;
    let skipped = invocation.result.as_ref().is_ok_and(|o| o.is_skip());
    let (ok, output, error, reason) = match &invocation.result {
        Ok(outcome) => (true, Some(outcome.text().to_owned()), None, None),
        Err(e) => (false, None, Some(e.to_string()), Some(e.reason())),
    };
    TestReport {
        plugin: plugin.manifest.name.clone(),
        version: plugin.manifest.version.clone(),
        alertname: alert.alertname().to_owned(),
        status: alert.status,
        decision,
        skip_reason,
        skip_detail,
        ok,
        skipped,
        output,
        error,
        reason,
        unanswered: reads.unanswered.map(|u| u.list()).unwrap_or_default(),
        calls: invocation.calls,
        calls_over_budget: invocation.calls_over_budget,
        logs: invocation.logs,
        stdout: invocation.stdout,
        stderr: invocation.stderr,
        duration_ms: invocation.duration.as_secs_f64() * 1000.0,
        state: match plugin.manifest.state {
            Some(_) => state
                .entries(&plugin.manifest.name)
                .await
                .ok()
                .map(|map| map.0.into_iter().map(|(key, entry)| (key, entry.value)).collect()),
            None => None,
        },
    }
}

/// A trial's copy of `plugin`'s state: read from `file` (a state file, as
/// the host keeps them: `{"KEY": {"value": "...", "expires": UNIX_SECONDS}}`),
/// or empty.
pub fn trial_state(plugin: &str, file: Option<&Path>) -> Result<Arc<MemoryStateStore>, StoreError> {
    let state = match file {
        Some(file) if !file.exists() => {
            return Err(StoreError::Failed(format!("{}: no such file", file.display())));
        }
        Some(file) => crate::plugin_state::read_file(file)?,
        None => StateMap::default(),
    };
    Ok(Arc::new(MemoryStateStore::scratch(plugin, state)))
}

/// Text that holds no alerts to test with.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    /// The text is not JSON.
    #[error("not JSON: {0}")]
    NotJson(serde_json::Error),
    /// The JSON is none of the accepted shapes.
    #[error("not an alert, a list of alerts or a webhook payload: {0}")]
    NotAlerts(serde_json::Error),
    /// The list is empty.
    #[error("no alerts")]
    Empty,
}

/// Why a plugin named by a path did not load.
#[derive(Debug, thiserror::Error)]
pub enum PluginPathError {
    /// The path names no file.
    #[error("{} is not a file", .0.display())]
    NotAFile(PathBuf),
    /// The directory of the component cannot be read.
    #[error("{}: {source}", dir.display())]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// What the filesystem said.
        source: std::io::Error,
    },
    /// No manifest beside the component names it.
    #[error("no manifest in {} names {component}; pass the manifest (NAME.toml) instead", dir.display())]
    NoManifest {
        /// The directory.
        dir: PathBuf,
        /// The component's file name.
        component: String,
    },
    /// More than one manifest names the component.
    #[error("several manifests name {component} ({}); pass one of them", manifests.join(", "))]
    SeveralManifests {
        /// The component.
        component: String,
        /// The manifests that name it.
        manifests: Vec<String>,
    },
    /// The plugin did not load.
    #[error(transparent)]
    Load(#[from] PluginFileError),
}

/// Alerts from a file or body: one alert object, a list of them, or a
/// whole Alertmanager webhook payload.
pub fn parse_alerts(text: &str) -> Result<Vec<Alert>, AlertsError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(AlertsError::NotJson)?;
    let alerts = if value.get("alerts").is_some() {
        serde_json::from_value::<WebhookPayload>(value).map(|p| p.alerts)
    } else if value.is_array() {
        serde_json::from_value::<Vec<Alert>>(value)
    } else {
        serde_json::from_value::<Alert>(value).map(|a| vec![a])
    };
    let alerts = alerts.map_err(AlertsError::NotAlerts)?;
    if alerts.is_empty() {
        return Err(AlertsError::Empty);
    }
    Ok(alerts)
}

/// A container state for seeding the recording runtime.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSeed {
    /// The container's name.
    pub name: String,
    /// Its state (default `running`).
    #[serde(default = "running")]
    pub state: String,
    /// Seconds since start; or give `started_at`.
    pub uptime_sec: Option<u64>,
    /// When it started (RFC 3339).
    pub started_at: Option<String>,
    /// Restarts so far.
    #[serde(default)]
    pub restart_count: u32,
    /// Its health, if it has a health check.
    pub health: Option<String>,
}

fn running() -> String {
    "running".into()
}

/// A recording runtime with these containers; without seeds, every
/// container the manifest allows is running and has been up for an hour.
pub fn seeded_runtime(seeds: Option<Vec<ContainerSeed>>, manifest: &Manifest) -> Arc<FakeRuntime> {
    let fake = Arc::new(FakeRuntime::new());
    match seeds {
        Some(seeds) => {
            for seed in seeds {
                let started_at = seed.started_at.unwrap_or_else(|| {
                    let uptime = chrono::Duration::seconds(seed.uptime_sec.unwrap_or(3600) as i64);
                    (chrono::Utc::now() - uptime).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                });
                fake.add(ContainerInfo {
                    name: seed.name,
                    state: seed.state,
                    started_at,
                    restart_count: seed.restart_count,
                    health: seed.health,
                    labels: Default::default(),
                });
            }
        }
        None => {
            for name in &manifest.containers {
                fake.add_running(name, Duration::from_secs(3600));
            }
        }
    }
    fake
}

/// Loads a plugin from a manifest path, or from a component path whose
/// manifest is the one beside it that names it.
pub fn load_plugin(
    runtime: &PluginRuntime,
    path: &Path,
    bounds: ManifestBounds,
) -> Result<Arc<Plugin>, PluginPathError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .ok_or_else(|| PluginPathError::NotAFile(path.to_owned()))?;
    let manifest_file = if file.ends_with(".toml") {
        file
    } else {
        find_manifest_for(dir, &file, bounds)?
    };
    Ok(autoheal_sandbox::registry::load_file(
        runtime,
        dir,
        &manifest_file,
        bounds,
    )?)
}

fn find_manifest_for(dir: &Path, component: &str, bounds: ManifestBounds) -> Result<String, PluginPathError> {
    let entries = std::fs::read_dir(dir).map_err(|source| PluginPathError::ReadDir {
        dir: dir.to_owned(),
        source,
    })?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".toml") || name == "Cargo.toml" {
            continue;
        }
        // Not a FIFO (reading one blocks) nor anything else but a small file.
        let small_file = std::fs::metadata(entry.path())
            .is_ok_and(|m| m.is_file() && m.len() <= autoheal_sandbox::registry::MAX_MANIFEST_BYTES);
        if !small_file {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        if Manifest::parse(&name, &text, bounds).is_ok_and(|m| m.component == component) {
            found.push(name);
        }
    }
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(PluginPathError::NoManifest {
            dir: dir.to_owned(),
            component: component.to_owned(),
        }),
        _ => Err(PluginPathError::SeveralManifests {
            component: component.to_owned(),
            manifests: found,
        }),
    }
}
