//! The parts of a running host ([`Host`]), apart from how it starts
//! (`app`): what the HTTP handlers, the plugin watcher (`reload`) and the
//! CLI share. Its own module so that `app`, which starts a host and runs
//! its first plugin scan, and `reload`, which scans, both use it without
//! using each other.

use std::sync::Arc;

use autoheal_containers::ContainerRuntime;
use autoheal_core::audit::AuditLog;
use autoheal_sandbox::PluginRuntime;
use autoheal_sandbox::capability::Breakers;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::compiling::CompileBoard;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::remediation::Remediator;
use crate::startup::Startup;
use crate::switches::Switches;

/// The parts of a running host. Each HTTP handler, the plugin watcher and
/// the CLI take the parts they need; the remediator only decides and dispatches.
#[derive(Clone)]
pub struct Host {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The audit trail every part records to.
    pub audit: Arc<AuditLog>,
    /// The Prometheus metrics, fed from the audit trail.
    pub metrics: Arc<Metrics>,
    /// Decides on alerts and dispatches plugins.
    pub remediator: Arc<Remediator>,
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
    /// The circuit breakers the capability gate asks, one per effect
    /// (their use is shown in `GET /`).
    pub breakers: Breakers,
    /// Whether the plugins are loaded, and how far loading them has come.
    pub startup: Arc<Startup>,
    /// The plugins compiling now.
    pub compiles: Arc<CompileBoard>,
}
