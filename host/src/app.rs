//! Start-up: open the audit trail, load the plugins, rebuild cooldowns, and
//! hand back a ready engine. Every step says what it found as an event.

use std::sync::Arc;

use crate::audit::{AuditError, AuditLog};
use crate::config::Config;
use crate::containers::ContainerRuntime;
use crate::engine::{Cooldowns, Engine};
use crate::event::{EventKind, NewEvent, unix_now};
use crate::manifest::{MAX_COOLDOWN, ManifestBounds};
use crate::metrics::Metrics;
use crate::registry::{DirError, PluginSet, scan_dir};
use crate::sandbox::PluginRuntime;
use crate::sandbox::breaker::RestartBreaker;
use crate::sandbox::capability::HostServices;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("cannot start the WebAssembly runtime: {0}")]
    Runtime(String),
    #[error(transparent)]
    PluginsDir(#[from] DirError),
    #[error("cannot rebuild cooldowns and restart history from the audit trail: {0}")]
    Rebuild(std::io::Error),
    #[error("config key `circuit_breaker.window`: {0}")]
    BreakerWindow(String),
}

pub async fn start(config: Config, containers: Arc<dyn ContainerRuntime>) -> Result<Arc<Engine>, StartError> {
    let metrics = Arc::new(Metrics::new());
    metrics.enabled.set(i64::from(config.enabled));
    let observer = {
        let metrics = metrics.clone();
        Box::new(move |event: &crate::event::Event| metrics.observe(event))
    };
    let (audit, recovery) = AuditLog::open(&config.audit_path, config.audit_fsync, Some(observer))?;
    let audit = Arc::new(audit);
    if let Some(torn) = &recovery.torn_tail {
        tracing::warn!(bytes = torn.bytes, set_aside = %torn.set_aside.display(), "torn last line in audit trail set aside");
        audit.emit(
            NewEvent::new(EventKind::HostWarning)
                .with("warning", "torn_audit_line")
                .with("bytes", torn.bytes)
                .with("set_aside", &torn.set_aside)
                .with(
                    "detail",
                    "the audit trail ended in a partial line (a crash mid-write); it was moved aside",
                ),
        );
    }

    let runtime = PluginRuntime::new(&config.sandbox, Some(&config.cache_dir))
        .map_err(|e| StartError::Runtime(format!("{e:#}")))?;
    let scan = scan_dir(
        &runtime,
        &config.plugins_dir,
        manifest_bounds(&config),
        &PluginSet::default(),
    )?;
    crate::reload::record_changes(&audit, &scan.changes);
    let plugins = scan.set;

    let horizon = plugins
        .iter()
        .filter_map(|p| p.manifest.cooldown)
        .map(|d| d.as_secs())
        .chain(config.cooldowns.values().copied())
        .chain([config.default_cooldown_sec])
        .max()
        .unwrap_or(0)
        .min(MAX_COOLDOWN.as_secs());
    let cooldowns =
        Cooldowns::rebuild(&config.audit_path, unix_now(), horizon as f64).map_err(StartError::Rebuild)?;
    let restored = cooldowns.active(unix_now()).count();
    let window = config
        .circuit_breaker
        .window()
        .map_err(StartError::BreakerWindow)?;
    let breaker = RestartBreaker::new(config.circuit_breaker.max_restarts, window);
    let recent_restarts = breaker.rebuild(&config.audit_path).map_err(StartError::Rebuild)?;

    let engine = Arc::new(Engine::new(
        Arc::new(config),
        audit.clone(),
        Arc::new(runtime),
        HostServices {
            containers,
            breaker: Arc::new(breaker),
        },
        plugins,
        cooldowns,
        metrics,
    ));
    let (mode, dry_run_reason) = engine.mode();
    audit.emit(
        NewEvent::new(EventKind::HostStarted)
            .with("version", env!("CARGO_PKG_VERSION"))
            .with("enabled", engine.config().enabled)
            .with("dry_run", engine.config().dry_run)
            .with("mode", mode)
            .with("dry_run_reason", dry_run_reason)
            .with("plugins", engine.plugins().len())
            .with("cooldowns_restored", restored)
            .with("recent_restarts_restored", recent_restarts)
            .with("allocator", engine.runtime().allocator())
            .with("container_engine", engine.containers().describe()),
    );
    Ok(engine)
}

/// What manifests are checked against.
pub fn manifest_bounds(config: &Config) -> ManifestBounds {
    ManifestBounds {
        max_memory_mb: config.sandbox.max_memory_mb,
    }
}
