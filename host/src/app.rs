//! Start-up: open the audit trail, rebuild cooldowns and the restart
//! history, load the plugins, and hand back a ready [`Host`]. Every step
//! says what it found as an event.
//!
//! It comes in two halves so that `autoheal serve` can answer HTTP while
//! the plugins compile (a minute on a first start with the Python and
//! JavaScript plugins): [`open`] does what is quick and gives a [`Host`]
//! that serves (`POST /alert` answers 503 until it is ready, see
//! [`crate::startup`]), [`Opened::load_plugins`] compiles and makes it
//! ready. [`start`] does both.

use std::sync::Arc;
use std::time::Duration;

use autoheal_core::audit::{AuditError, AuditFilter, AuditLog};
use autoheal_core::event::{AuditRecovered, Event, EventBody, HostStarted};
use autoheal_core::util::unix_now;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::intents::AuditIntents;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::remediation::{Horizons, Remediator, Remembered};
use crate::switches::{SwitchError, SwitchState, Switches};
use autoheal_containers::ContainerRuntime;
use autoheal_core::invocation::Capability;
use autoheal_core::mode::ExecutionMode;
use autoheal_sandbox::breaker::RestartBreaker;
use autoheal_sandbox::capability::{Breakers, HostServices, HttpServices, NetTransport};
use autoheal_sandbox::manifest::{DEFAULT_APPROVAL_EXPIRES, MAX_COOLDOWN, MAX_POLICY_WAIT};
use autoheal_sandbox::registry::{DirError, PluginSet, read_manifests};

use crate::compiling::CompileBoard;
use crate::startup::Startup;
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
    /// The Prometheus plugins query cannot be set up (`prometheus_url`,
    /// `prometheus_token_file`, `prometheus_ca_file`).
    #[error(transparent)]
    Prometheus(#[from] crate::prom_queries::PromSetupError),
    /// The restored switches run actions for real, but the webhook is open.
    #[error(
        "the switch state file says enabled and not dry-run, but POST /alert takes no credentials: \
         set AUTOHEAL_WEBHOOK_TOKEN, or [auth] allow_unauthenticated_real = true to accept the risk"
    )]
    Unsafe,
}

pub use crate::parts::Host;

/// A host whose plugins are not loaded yet: it serves, but does not act
/// (see [`crate::startup`]) until [`Opened::load_plugins`].
pub struct Opened {
    /// The host, serving as soon as it is given to `http::serve`.
    pub host: Host,
    /// For `host_started`: the cooldowns read back from the trail.
    cooldowns_restored: usize,
    /// For `host_started`: the real restarts inside the breaker's window.
    recent_restarts_restored: usize,
}

/// Starts a host on `config` and waits until its plugins are loaded: the
/// whole of [`open`] then [`Opened::load_plugins`].
pub async fn start(config: Config, containers: Arc<dyn ContainerRuntime>) -> Result<Host, StartError> {
    open(config, containers).await?.load_plugins().await
}

/// The quick half of a start: switches, audit trail, cooldowns and restart
/// history rebuilt from the trail, the cluster joined. The plugins'
/// manifests are read (their cooldowns say how far back to read the
/// trail), their components not yet compiled.
pub async fn open(config: Config, containers: Arc<dyn ContainerRuntime>) -> Result<Opened, StartError> {
    let startup = Arc::new(Startup::new());
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
    metrics.dry_run.set(i64::from(state.dry_run));
    metrics.know_alertnames(config.cooldowns.keys().map(String::as_str));
    let console = format!("{}/console", config.public_url.trim_end_matches('/'));
    let notifier = config
        .notify
        .enabled
        .then(|| Notifier::new(config.notify.hold, config.notify.not_remediating_after, console));
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
    if let Some(url) = config.unreachable_public_url() {
        tracing::warn!(
            public_url = url,
            "this replica tells the others to reach it at a loopback address: set public_url \
             (AUTOHEAL_PUBLIC_URL) to an address they can reach, or merged audits and forwarded \
             approvals will not get here"
        );
    }
    let cluster = match &config.cluster {
        Some(settings) => Some(Arc::new(Cluster::connect(settings.clone()).await?)),
        None => None,
    };
    let (mut audit, recovery) = AuditLog::open_with(
        &config.audit_path,
        config.audit_fsync,
        config.audit_rotation.clone(),
        Some(observer),
    )?;
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
    // Manifests only: the components are compiled by `load_plugins`. A
    // manifest whose component will not load still lengthens the read,
    // which costs time, not correctness (cooldowns keep their own length).
    let manifests = read_manifests(&config.plugins_dir, config.manifest_bounds())?;
    if let Some(last) = last_actions(&audit).last() {
        // The per-alert series wait for the plugins' alertnames (`load_plugins`).
        metrics.restore_last_action_epoch(last.0);
    }

    let horizon = manifests
        .iter()
        .filter_map(|m| m.cooldown)
        .map(|d| d.as_secs())
        .chain(config.cooldowns.values().copied())
        .chain([config.default_cooldown_sec])
        .max()
        .unwrap_or(0)
        .min(MAX_COOLDOWN.as_secs());
    // An alert's annotation may ask any plugin for an approval: the
    // horizon is the longest wait of any, the default's included.
    let approval_horizon = manifests
        .iter()
        .map(|m| m.approval_expires)
        .chain([DEFAULT_APPROVAL_EXPIRES])
        .max()
        .unwrap_or(DEFAULT_APPROVAL_EXPIRES);
    // A watch begun longer ago than the longest `[verify] within` has
    // passed its deadline whatever its plugin.
    let verify_horizon = manifests
        .iter()
        .filter_map(|m| m.verify_within)
        .max()
        .unwrap_or_default();
    // A hold (`[match] firing_for`) is looked for as far back as the
    // longest grace may be, so that one that came due while the host was
    // down is still found and decided; none when no plugin has a grace.
    // An alert kept to be tried again (`retry`) is looked for as far back
    // as it may be kept, whatever the plugins.
    let grace_horizon = if manifests.iter().any(|m| m.firing_for.is_some()) {
        MAX_POLICY_WAIT
    } else {
        Duration::from_secs_f64(autoheal_core::event::Retry::KEPT_FOR_SEC)
    };
    // The longest window any repeat cap counts over.
    let repeat_horizon = manifests
        .iter()
        .flat_map(|m| m.max_actions.iter().chain(&m.max_actions_all_keys))
        .map(|cap| cap.window)
        .max()
        .unwrap_or_default();
    let horizons = Horizons {
        grace_sec: grace_horizon.as_secs_f64(),
        cooldown_sec: horizon as f64,
        approval_sec: approval_horizon.as_secs_f64(),
        verify_sec: verify_horizon.as_secs_f64(),
        repeat_sec: repeat_horizon.as_secs_f64(),
    };
    let remembered = Remembered::rebuild(&config.audit_path, unix_now(), horizons, config.budget.clone())
        .map_err(StartError::Rebuild)?;
    let restored = remembered.cooldowns.active(unix_now()).count();
    let mut breaker = RestartBreaker::new(config.circuit_breaker.max_restarts, config.circuit_breaker.window);
    if let Some(cluster) = &cluster {
        breaker = breaker.shared_with(cluster.clone());
    }
    let limits = &config.circuit_breaker;
    let breakers = Breakers::new(
        Arc::new(breaker),
        limits.max_signals,
        limits.max_execs,
        limits.window,
    )
    .with_http(limits.max_http_effects, limits.window);
    let mut recent_restarts = 0;
    for breaker in breakers.all() {
        let rebuilt = breaker.rebuild(&config.audit_path).map_err(StartError::Rebuild)?;
        for interrupted in rebuilt.interrupted {
            let effect = interrupted
                .capability
                .map_or("containers.restart", |c| c.as_str());
            tracing::warn!(container = %interrupted.container, plugin = %interrupted.plugin, %effect, "an effect was interrupted by the last stop; it counts as done");
            audit.emit(EventBody::ActionInterrupted(interrupted));
        }
        if breaker.capability() == Capability::ContainersRestart {
            recent_restarts = rebuilt.restarts;
        }
    }

    let config = Arc::new(config);
    let runtime = Arc::new(runtime);
    let compiles = Arc::new(CompileBoard::default());
    let remediator = Arc::new(Remediator::new(
        config.clone(),
        switches.clone(),
        audit.clone(),
        runtime.clone(),
        HostServices {
            containers: containers.clone(),
            breakers: breakers.clone(),
            intents: Arc::new(AuditIntents::new(audit.clone())),
            http: HttpServices {
                transport: Arc::new(NetTransport),
                secrets: config.secrets.clone(),
            },
            prometheus: Arc::new(crate::prom_queries::PluginPrometheus::from_config(&config)?),
            // Replicas share plugins' state through etcd; a lone host
            // keeps it beside its trail.
            state: match &cluster {
                Some(cluster) => Arc::new(crate::plugin_state::ClusterStateStore::new(cluster.clone())),
                None => Arc::new(crate::plugin_state::FileStateStore::new(
                    crate::plugin_state::state_dir(&config.audit_path),
                )),
            },
        },
        PluginSet::default(),
        compiles.clone(),
        remembered,
        cluster.clone(),
    ));
    if let Some(cluster) = &cluster {
        cluster.join(&switches, &audit).await;
    }
    let shutdown = CancellationToken::new();
    if let Some(cluster) = &cluster {
        let follower = crate::cluster::Follower {
            switches: switches.clone(),
            audit: audit.clone(),
            public_url: config.public_url.clone(),
        };
        tokio::spawn(cluster.clone().follow(follower, shutdown.clone()));
    }
    // autoheal_heartbeat_timestamp_seconds: what AutohealNoEvents15m reads
    // to tell a live host from a dead or unscraped one.
    tokio::spawn(Metrics::beat_until(metrics.clone(), shutdown.clone()));
    if let Some(notifier) = notifier {
        let alertmanager = config.alertmanager.clone();
        tokio::spawn(notifier.run(
            reqwest::Client::new(),
            alertmanager,
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    let host = Host {
        config,
        audit,
        metrics,
        remediator,
        runtime,
        containers,
        reload_lock: Arc::new(tokio::sync::Mutex::new(())),
        shutdown,
        switches,
        cluster,
        breakers,
        startup,
        compiles,
    };
    Ok(Opened {
        host,
        cooldowns_restored: restored,
        recent_restarts_restored: recent_restarts,
    })
}

impl Opened {
    /// The slow half of a start: compiles the plugins (or reads them from
    /// the compile cache) on a blocking thread, logging each with its
    /// progress, swaps them in, records `host_started`, starts the
    /// background follow-ups (approval expiry, verify deadlines and
    /// escalation, which act on plugins) and makes the host ready.
    pub async fn load_plugins(self) -> Result<Host, StartError> {
        let host = self.host;
        // The first scan: the plugins compile off the serving path, several
        // at once, each swapped in as it ends; ready once they all have.
        crate::reload::reload(&host).await?;
        // After the plugins' `plugin_loaded`: their alertnames have series now.
        host.metrics.restore_last_actions(last_actions(&host.audit));

        let state = host.switches.state();
        let (mode, dry_run_reason) = host.switches.mode();
        host.audit.emit(EventBody::HostStarted(HostStarted {
            allocator: host.runtime.allocator().as_str().to_owned(),
            container_engine: host.containers.describe(),
            cooldowns_restored: self.cooldowns_restored,
            dry_run: state.dry_run,
            dry_run_reason,
            enabled: state.enabled,
            mode,
            plugins: host.remediator.plugins().len(),
            recent_restarts_restored: self.recent_restarts_restored,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }));
        // With the plugins there: what was queued when the host stopped.
        if let Err(e) = host.remediator.requeue_after_restart().await {
            tracing::error!(error = %e, "the actions queued before the restart could not be decided afresh: their alerts act when Alertmanager sends them again");
        }
        // Approvals expire, fixes are verified and chains escalate in the
        // background: only once the plugins they name are there.
        tokio::spawn(Remediator::run_follow_ups(
            Arc::downgrade(&host.remediator),
            reqwest::Client::new(),
            host.shutdown.clone(),
        ));
        if !host.config.maintenance.is_empty() {
            // What a restart during a window must not record again.
            let windows = host.config.maintenance.clone();
            let announcer = crate::maintenance::announce::Announcer::rebuild(
                windows,
                &host.config.audit_path,
                unix_now(),
            )
            .map_err(StartError::Rebuild)?;
            tokio::spawn(announcer.run(host.audit.clone(), host.shutdown.clone()));
        }
        host.startup.set_ready();
        crate::memory::give_back_freed();
        Ok(host)
    }
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
