//! `GET /`: what the host is, what it serves, and whether its container
//! engines answer. The same body is a 503 while the plugins load.

use std::collections::{BTreeMap, HashMap};

use autoheal_core::mode::{DryRunReason, ExecutionMode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::cluster::Member;

/// Whether the host serves alerts yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// Its plugins are loaded.
    Ready,
    /// Its plugins are loading (`startup` says how far); the answer is a 503.
    Starting,
}

/// `GET /`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatusAnswer {
    /// Always `autoheal`.
    pub service: String,
    /// The host's version.
    pub version: String,
    /// Ready, or still loading its plugins.
    pub status: Readiness,
    /// How far loading the plugins has come.
    pub startup: LoadProgress,
    /// The kill switch: off, nothing acts.
    pub enabled: bool,
    /// The dry-run switch.
    pub dry_run: bool,
    /// What an action would do now: `real` or `dry_run`.
    #[schema(value_type = String, example = "dry_run")]
    pub mode: ExecutionMode,
    /// Why `dry_run`, when it is.
    #[schema(value_type = Option<String>, example = "switch")]
    pub dry_run_reason: Option<DryRunReason>,
    /// The audit trail's file.
    pub audit_path: String,
    /// Whether the audit trail can be written (no action without a record).
    pub audit_writable: bool,
    /// Bytes of the audit trail: its live file and every rolled segment
    /// (absent from hosts older than rotation, or when it cannot be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_bytes: Option<u64>,
    /// Bytes free on the filesystem of the trail's directory (absent from
    /// hosts older than rotation, or when it cannot be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_filesystem_free_bytes: Option<u64>,
    /// The plugins directory.
    pub plugins_dir: String,
    /// Alertmanager's URL, without credentials (the CLI's default for it):
    /// the first of `alertmanager_urls`.
    pub alertmanager_url: String,
    /// Every member of Alertmanager's HA cluster the host talks to, in the
    /// order configured, without credentials (one URL: just it). Absent
    /// from hosts older than the list.
    #[serde(default)]
    pub alertmanager_urls: Vec<String>,
    /// Prometheus's URL, without credentials.
    pub prometheus_url: String,
    /// The loaded plugins.
    pub plugins: Vec<PluginSummary>,
    /// Manifest files that did not load, and why.
    pub plugins_rejected: Vec<PluginRejection>,
    /// The plugins whose component compiles now (new or changed; a changed
    /// one's earlier version serves meanwhile), oldest first. Absent from
    /// hosts older than it.
    #[serde(default)]
    pub plugin_compiling: Vec<PluginCompiling>,
    /// The default container engine (the first of `engines`, unnamed);
    /// `null` when there is none.
    pub container_engine: Option<EngineReach>,
    /// Every container engine, the default first.
    pub engines: Vec<EngineReach>,
    /// The plugin runtime's allocator (`pooling` or `on_demand`).
    pub allocator: String,
    /// The cooldowns running.
    pub cooldowns: Vec<CooldownEntry>,
    /// The restart circuit breaker.
    pub breaker: BreakerReport,
    /// The circuit breakers of the other effects (`containers.signal`,
    /// `containers.exec`), each counted per container on this replica.
    #[serde(default)]
    pub effect_breakers: Vec<EffectBreakerReport>,
    /// The blast-radius budgets of real actions.
    pub budget: BudgetReport,
    /// Actions waiting for an operator.
    pub approvals_pending: usize,
    /// Actions whose alert is watched until it resolves.
    pub verifying: Vec<VerifyingEntry>,
    /// The maintenance windows of the config (`[[maintenance]]`), as written.
    pub maintenance: Vec<MaintenanceWindow>,
    /// Alerts held by their plugin's grace (`[match] firing_for`), soonest due first.
    #[serde(default)]
    pub deferred: Vec<DeferredEntry>,
    /// The cluster, on a replica; `null` on a single host.
    pub cluster: Option<ClusterReport>,
    /// The host process's memory.
    #[serde(default)]
    pub memory: HostMemory,
    /// While starting: what the host is doing, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The host process's resident memory, as the kernel counts it; `null`
/// where the system does not say (not Linux).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostMemory {
    /// Resident now (`VmRSS`), bytes.
    pub rss_bytes: Option<u64>,
    /// The most resident since the host started (`VmHWM`), bytes: the
    /// compile peak, say.
    pub peak_rss_bytes: Option<u64>,
}

/// A plugin whose component compiles now (or is read from the cache).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PluginCompiling {
    /// The plugin's name, as its manifest says.
    pub name: String,
    /// The version compiling.
    pub version: String,
    /// The manifest's file name.
    pub file: String,
    /// The component's size, bytes.
    pub component_bytes: usize,
    /// When its compile was asked for (unix seconds; it may wait for a
    /// slot, `[sandbox] compile_concurrency`).
    pub since: f64,
}

/// How far loading the plugins has come.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LoadProgress {
    /// When the host began to start (unix seconds).
    pub since: f64,
    /// Manifest files in the plugins directory (0 until the scan begins).
    pub total: usize,
    /// The place of the plugin being loaded (from 1; 0 before the first).
    pub position: usize,
    /// The plugin whose component is being compiled or read from the cache.
    pub current: Option<String>,
    /// Components compiled or read from the cache so far.
    pub loaded: usize,
}

/// Whether a plugin's actions wait for an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalPolicy {
    /// Each action waits for `autoheal approve`.
    Required,
    /// Actions run when decided.
    None,
}

/// One loaded plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PluginSummary {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it does.
    pub description: String,
    /// The alert names it answers.
    pub alertnames: Vec<String>,
    /// The labels an alert must carry.
    pub labels: BTreeMap<String, String>,
    /// The containers it may touch.
    pub containers: Vec<String>,
    /// SHA-256 of its component.
    pub component_hash: String,
    /// What it is written in (`rust`, `python`, `javascript`).
    pub language: String,
    /// Whether its actions wait for an operator.
    pub approval: ApprovalPolicy,
    /// How long after an action its alert must resolve (`verify_within`).
    pub verify_within_sec: Option<f64>,
    /// The plugins tried next when it does not.
    pub escalate: Vec<String>,
    /// How long an alert must have been firing before it acts (`[match] firing_for`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firing_for_sec: Option<f64>,
}

/// A manifest file that did not load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PluginRejection {
    /// The file.
    pub file: String,
    /// Why.
    pub reason: String,
}

/// Whether a container engine answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EngineReach {
    /// Its name (`[engines.NAME]`, `default`); absent in `container_engine`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where it is.
    pub address: String,
    /// Whether it answered.
    pub reachable: bool,
    /// Its version, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Why not, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A cooldown running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CooldownEntry {
    /// Its key.
    pub key: String,
    /// The alert that started it.
    pub alertname: String,
    /// Seconds left, rounded up.
    pub remaining_sec: u64,
}

/// One maintenance window: whether it is open now, until when or when it
/// opens next, and what it covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MaintenanceWindow {
    /// Its name; a skip it causes says `pause_id: "window:NAME"`.
    pub name: String,
    /// Its cron schedule, as written.
    pub schedule: String,
    /// The IANA time zone the schedule is read in.
    pub timezone: String,
    /// How long each occurrence stays open, in seconds.
    pub duration_sec: f64,
    /// Open now: the actions it covers are skipped as `paused`.
    pub open: bool,
    /// While open: when it closes (unix seconds).
    pub until: Option<f64>,
    /// `until` as RFC 3339, in the window's zone.
    pub until_rfc3339: Option<String>,
    /// When the next occurrence begins (unix seconds).
    pub next_start: Option<f64>,
    /// `next_start` as RFC 3339, in the window's zone.
    pub next_start_rfc3339: Option<String>,
    /// The plugins it covers; empty: every plugin.
    pub plugins: Vec<String>,
    /// The label matchers of the alerts it covers; empty: every alert.
    #[serde(rename = "match")]
    pub matchers: String,
    /// Why it pauses.
    pub reason: String,
}

/// An action whose alert is watched until it resolves or its deadline passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VerifyingEntry {
    /// The alert's name.
    pub alertname: String,
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// The plugin that acted.
    pub plugin: String,
    /// Its place in the escalation chain (from 0).
    pub step: usize,
    /// The escalation chain.
    pub chain: Vec<String>,
    /// When it is judged ineffective (unix seconds).
    pub deadline: f64,
    /// Whether the action was a dry run.
    pub dry_run: bool,
}

/// An alert held until it has been firing for its plugin's `firing_for`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeferredEntry {
    /// The alert's name.
    pub alertname: String,
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// The plugin that waits.
    pub plugin: String,
    /// When it is decided afresh (unix seconds); for a retry after
    /// `cluster_unavailable`, the soonest, once the cluster answers.
    pub until: f64,
    /// Why it is kept to be tried again (`cluster_unavailable`,
    /// `overloaded`, `engine_unreachable`); absent for a grace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<String>,
}

/// Whose restarts the breaker counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerSource {
    /// This host's restarts.
    Local,
    /// Every replica's: the history a replica's breaker decides by.
    Cluster,
}

/// The restart circuit breaker: what it allows, and what is spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BreakerReport {
    /// Restarts allowed per container per window.
    pub max_restarts: u32,
    /// The window, in seconds.
    pub window_sec: f64,
    /// Whose restarts are counted.
    pub source: BreakerSource,
    /// In a cluster, why the shared history could not be read (then
    /// `source` is `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_error: Option<String>,
    /// The containers with restarts inside the window, the fullest first.
    pub containers: Vec<ContainerRestarts>,
}

/// The circuit breaker of an effect other than restarts: what it allows,
/// and what is spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EffectBreakerReport {
    /// The call it counts (`containers.signal`, `containers.exec`).
    pub capability: String,
    /// Real calls allowed per container per window
    /// (`[circuit_breaker] max_signals`, `max_execs`).
    pub max: u32,
    /// The window, in seconds.
    pub window_sec: f64,
    /// The containers with such calls inside the window, the fullest first
    /// (`spent` and `allowed` count calls of this kind).
    pub containers: Vec<ContainerRestarts>,
}

/// One container's restarts inside the breaker's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContainerRestarts {
    /// The container, as plugins name it (`NAME/container` on a named engine).
    pub container: String,
    /// Real restarts inside the window.
    pub spent: usize,
    /// Restarts the window allows.
    pub allowed: u32,
    /// Whether the next restart would be refused (`circuit_open`).
    pub open: bool,
    /// When the oldest of them leaves the window (unix seconds).
    pub frees_at: f64,
    /// Seconds until then.
    pub frees_in_sec: f64,
}

/// The budgets of real actions: each bound (`null`: none) and what is spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BudgetReport {
    /// `budget.max_actions`.
    pub max_actions: Option<u32>,
    /// `budget.window`, in seconds.
    pub window_sec: u64,
    /// Real actions started in the window up to now.
    pub started_in_window: usize,
    /// `budget.max_in_flight`.
    pub max_in_flight: Option<u32>,
    /// Real actions running now.
    pub in_flight: u32,
    /// `budget.per_label`.
    pub per_label: Option<String>,
    /// `budget.max_in_flight_per_label`, when `per_label` is set.
    pub max_in_flight_per_label: Option<u32>,
    /// Real actions running now for each value of `per_label` that has any.
    pub in_flight_per_label: HashMap<String, u32>,
}

/// The cluster's health, on a replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterReport {
    /// This replica's name.
    pub replica: String,
    /// The etcd URLs.
    pub etcd: Vec<String>,
    /// Whether the last request to etcd succeeded.
    pub available: bool,
    /// Since when (unix seconds) it has been as it is.
    pub since: f64,
    /// The last failure, while unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The replicas listed now (empty while etcd does not answer).
    pub replicas: Vec<Member>,
    /// The claims held now, the soonest to run out first (at most 100;
    /// empty while etcd does not answer): which replica acted, or acts, on
    /// which cooldown key, and until when no other may.
    #[serde(default)]
    pub claims: Vec<HeldClaim>,
}

/// A claim one replica holds: it alone acts on this cooldown key until
/// the claim runs out (the claim is the cluster's shared cooldown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HeldClaim {
    /// The cooldown key (plugin, alertname, cooldown labels).
    pub key: String,
    /// The replica holding it.
    pub replica: String,
    /// The plugin it was taken for.
    pub plugin: String,
    /// When it was taken (unix seconds).
    pub at: f64,
    /// When it runs out (unix seconds).
    pub until: f64,
}
