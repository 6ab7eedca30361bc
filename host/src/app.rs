//! Start-up: open the audit trail, load the plugins, rebuild cooldowns, and
//! hand back a ready [`Host`]. Every step says what it found as an event.

use std::sync::Arc;

use autoheal_core::audit::{AuditError, AuditFilter, AuditLog};
use autoheal_core::event::{AuditRecovered, Event, EventBody, HostStarted};
use autoheal_core::util::unix_now;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::engine::{Engine, Horizons, Remembered};
use crate::intents::AuditIntents;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::switches::{SwitchError, SwitchState, Switches};
use autoheal_containers::ContainerRuntime;
use autoheal_core::mode::ExecutionMode;
use autoheal_sandbox::breaker::RestartBreaker;
use autoheal_sandbox::capability::HostServices;
use autoheal_sandbox::manifest::{DEFAULT_APPROVAL_EXPIRES, MAX_COOLDOWN};
use autoheal_sandbox::registry::{DirError, PluginSet, scan_dir};
use autoheal_sandbox::{CacheLocation, PluginRuntime};

/// Why the host did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The audit trail could not be opened.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// wasmtime could not be set up with the sandbox limits.
    #[error("cannot start the WebAssembly runtime: {0}")]
    Runtime(String),
    /// The plugins directory could not be read.
    #[error(transparent)]
    PluginsDir(#[from] DirError),
    /// The audit trail could not be read back.
    #[error("cannot rebuild cooldowns and restart history from the audit trail: {0}")]
    Rebuild(std::io::Error),
    /// The switch state file could not be read.
    #[error(transparent)]
    Switches(#[from] SwitchError),
    /// The `[cluster]` settings cannot make an etcd client.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// The restored switches run actions for real, but the webhook is open.
    #[error(
        "the switch state file says enabled and not dry-run, but POST /alert takes no credentials: \
         set AUTOHEAL_WEBHOOK_TOKEN, or [auth] allow_unauthenticated_real = true to accept the risk"
    )]
    Unsafe,
}

/// The parts of a running host. Each HTTP handler, the plugin watcher and
/// the CLI take the parts they need; the engine only decides and dispatches.
#[derive(Clone)]
pub struct Host {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The audit trail every part records to.
    pub audit: Arc<AuditLog>,
    /// The Prometheus metrics, fed from the audit trail.
    pub metrics: Arc<Metrics>,
    /// Decides on alerts and dispatches plugins.
    pub engine: Arc<Engine>,
    /// The wasmtime runtime plugins run in.
    pub runtime: Arc<PluginRuntime>,
    /// The container engine behind the `containers` capability.
    pub containers: Arc<dyn ContainerRuntime>,
    /// Serializes plugin directory rescans (the watcher and the endpoint).
    pub reload_lock: Arc<tokio::sync::Mutex<()>>,
    /// Cancelled when the host begins to stop: long-lived responses (SSE
    /// streams) end, so that graceful shutdown is not held open by them.
    pub shutdown: CancellationToken,
    /// The kill switch and dry-run as they are now.
    pub switches: Arc<Switches>,
    /// The replicas' etcd, when this host is one of a cluster.
    pub cluster: Option<Arc<Cluster>>,
    /// The restart circuit breaker the `containers` capability asks (its
    /// use is shown in `GET /`).
    pub breaker: Arc<RestartBreaker>,
}

/// Starts a host on `config`: audit trail, plugins, cooldowns and restart history rebuilt from the trail, then `host_started`.
pub async fn start(config: Config, containers: Arc<dyn ContainerRuntime>) -> Result<Host, StartError> {
    let configured = SwitchState {
        enabled: config.enabled,
        dry_run: config.dry_run,
    };
    let real_allowed = config.auth.allows_real();
    let (switches, switches_restored) =
        Switches::load(Switches::path_for(&config.audit_path), configured, real_allowed)?;
    let switches = Arc::new(switches);
    let state = switches.state();
    if switches_restored && state != configured {
        tracing::warn!(
            enabled = state.enabled,
            dry_run = state.dry_run,
            "switches restored from the last runtime change, not the config"
        );
    }
    if switches.mode().0 == ExecutionMode::Real && !real_allowed {
        return Err(StartError::Unsafe);
    }
    let metrics = Arc::new(Metrics::new());
    metrics.enabled.set(i64::from(state.enabled));
    metrics.know_alertnames(config.cooldowns.keys().map(String::as_str));
    let console = format!("{}/console", config.public_url.trim_end_matches('/'));
    let notifier = config
        .notify
        .enabled
        .then(|| Notifier::new(config.notify.hold, console));
    let observer = {
        let (metrics, notifier) = (metrics.clone(), notifier.clone());
        Box::new(move |event: &Event| {
            crate::event_log::log(event);
            metrics.observe(event);
            if let Some(notifier) = &notifier {
                notifier.observe(event);
            }
        })
    };
    let cluster = match &config.cluster {
        Some(settings) => Some(Arc::new(Cluster::connect(settings.clone()).await?)),
        None => None,
    };
    let (mut audit, recovery) = AuditLog::open(&config.audit_path, config.audit_fsync, Some(observer))?;
    audit.set_replica(cluster.as_ref().map(|c| c.replica().to_owned()));
    let audit = Arc::new(audit);
    if let Some(cluster) = &cluster {
        cluster.record_to(audit.clone());
    }
    if let Some(torn) = &recovery.torn_tail {
        tracing::warn!(bytes = torn.bytes, set_aside = %torn.set_aside.display(), "torn last line in audit trail set aside");
        audit.emit(EventBody::AuditRecovered(AuditRecovered {
            bytes: torn.bytes,
            detail: "the audit trail ended in a write a crash cut short; its bytes were moved aside".into(),
            set_aside: torn.set_aside.clone(),
        }));
    }

    let cache = CacheLocation {
        dir: config.cache_dir.clone(),
        key_file: config.cache_key_file.clone(),
    };
    let runtime = PluginRuntime::new(&config.sandbox, Some(&cache))
        .map_err(|e| StartError::Runtime(format!("{e:#}")))?;
    let scan = scan_dir(
        &runtime,
        &config.plugins_dir,
        config.manifest_bounds(),
        &PluginSet::default(),
    )?;
    crate::plugin_events::record_changes(&audit, &scan.changes);
    let plugins = scan.set;
    // After the plugins' `plugin_loaded`: their alertnames have series now.
    metrics.restore_last_actions(last_actions(&audit));

    let horizon = plugins
        .iter()
        .filter_map(|p| p.manifest.cooldown)
        .map(|d| d.as_secs())
        .chain(config.cooldowns.values().copied())
        .chain([config.default_cooldown_sec])
        .max()
        .unwrap_or(0)
        .min(MAX_COOLDOWN.as_secs());
    // An alert's annotation may ask any plugin for an approval: the
    // horizon is the longest wait of any, the default's included.
    let approval_horizon = plugins
        .iter()
        .map(|p| p.manifest.approval_expires)
        .chain([DEFAULT_APPROVAL_EXPIRES])
        .max()
        .unwrap_or(DEFAULT_APPROVAL_EXPIRES);
    let horizons = Horizons {
        cooldown_sec: horizon as f64,
        approval_sec: approval_horizon.as_secs_f64(),
    };
    let remembered = Remembered::rebuild(&config.audit_path, unix_now(), horizons, config.budget.clone())
        .map_err(StartError::Rebuild)?;
    let restored = remembered.cooldowns.active(unix_now()).count();
    let mut breaker = RestartBreaker::new(config.circuit_breaker.max_restarts, config.circuit_breaker.window);
    if let Some(cluster) = &cluster {
        breaker = breaker.shared_with(cluster.clone());
    }
    let rebuilt = breaker.rebuild(&config.audit_path).map_err(StartError::Rebuild)?;
    for interrupted in rebuilt.interrupted {
        tracing::warn!(container = %interrupted.container, plugin = %interrupted.plugin, "a restart was interrupted by the last stop; it counts as done");
        audit.emit(EventBody::ActionInterrupted(interrupted));
    }
    let recent_restarts = rebuilt.restarts;
    let breaker = Arc::new(breaker);

    let config = Arc::new(config);
    let runtime = Arc::new(runtime);
    let engine = Arc::new(Engine::new(
        config.clone(),
        switches.clone(),
        audit.clone(),
        runtime.clone(),
        HostServices {
            containers: containers.clone(),
            breaker: breaker.clone(),
            intents: Arc::new(AuditIntents::new(audit.clone())),
        },
        plugins,
        remembered,
        cluster.clone(),
    ));
    if let Some(cluster) = &cluster {
        cluster.join(&switches, &audit, &metrics).await;
    }
    let state = switches.state();
    let (mode, dry_run_reason) = switches.mode();
    audit.emit(EventBody::HostStarted(HostStarted {
        allocator: runtime.allocator().as_str().to_owned(),
        container_engine: containers.describe(),
        cooldowns_restored: restored,
        dry_run: state.dry_run,
        dry_run_reason,
        enabled: state.enabled,
        mode,
        plugins: engine.plugins().len(),
        recent_restarts_restored: recent_restarts,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }));
    let shutdown = CancellationToken::new();
    if let Some(cluster) = &cluster {
        let follower = crate::cluster::Follower {
            switches: switches.clone(),
            audit: audit.clone(),
            metrics: metrics.clone(),
            public_url: config.public_url.clone(),
        };
        tokio::spawn(cluster.clone().follow(follower, shutdown.clone()));
    }
    // autoheal_heartbeat_timestamp_seconds: what AutohealNoEvents15m reads
    // to tell a live host from a dead or unscraped one.
    tokio::spawn(Metrics::beat_until(metrics.clone(), shutdown.clone()));
    // Approvals expire and fixes are verified in the background.
    tokio::spawn(Engine::run_policies(
        Arc::downgrade(&engine),
        reqwest::Client::new(),
        shutdown.clone(),
    ));
    if let Some(notifier) = notifier {
        let alertmanager = config.alertmanager_url.clone();
        tokio::spawn(notifier.run(
            reqwest::Client::new(),
            alertmanager,
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    Ok(Host {
        config,
        audit,
        metrics,
        engine,
        runtime,
        containers,
        reload_lock: Arc::new(tokio::sync::Mutex::new(())),
        shutdown,
        switches,
        cluster,
        breaker,
    })
}

/// How many of the newest actions the last-action gauges are restored from.
const RESTORED_ACTIONS: usize = 1000;

/// The newest actions in the trail (at most [`RESTORED_ACTIONS`], found
/// through the index by kind), as `(ts, alertname)`.
fn last_actions(audit: &AuditLog) -> Vec<(f64, String)> {
    let filter = AuditFilter {
        kinds: ["action_ok", "action_dry_run", "action_fail"]
            .map(str::to_owned)
            .to_vec(),
        ..Default::default()
    };
    let lines = match audit.read_tail(&filter, RESTORED_ACTIONS) {
        Ok(lines) => lines,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the last actions back from the audit trail; the last action shows as never");
            return Vec::new();
        }
    };
    lines
        .iter()
        .filter_map(|line| {
            let event: serde_json::Value = serde_json::from_str(line.get()).ok()?;
            Some((event["ts"].as_f64()?, event["alertname"].as_str()?.to_owned()))
        })
        .collect()
}
