//! Host configuration, in two phases.
//!
//! [`RawConfig`] is what a person writes, as plain serde values: built-in
//! defaults, then a TOML file, then environment variables, then command-line
//! flags. [`RawConfig::validate`] checks it once and returns the [`Config`]
//! the host runs on, whose values are typed (durations, the engine address)
//! and parsed nowhere else. Every error names the key (and the file or
//! variable) it came from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use autoheal_core::audit::FsyncPolicy;
use autoheal_core::failover::Members;
use autoheal_core::util::parse_duration;

use autoheal_containers::EngineAddress;
use autoheal_sandbox::SandboxConfig;

mod audit;
pub use audit::{AuditConfigError, RawAudit, parse_bytes};
mod cluster;
pub use cluster::{ClusterConfigError, ClusterSettings, ClusterTls, RawCluster};
mod maintenance;
pub use maintenance::{MAX_WINDOW, MaintenanceConfigError, RawWindow};
mod secrets;
pub use secrets::{RawSecret, SecretConfigError};
pub mod tokens;
pub use tokens::{RawToken, TokenConfigError};
pub mod oidc;
pub use crate::auth::oidc::OidcSettings;
pub use crate::auth::roles::RoleRule;
pub use oidc::{OidcConfigError, RawOidc, RawRoleRule};
mod url_list;
pub use url_list::UrlList;

use crate::auth::named::NamedTokens;
use crate::auth::{Role, TokenError, TokenSet};
use crate::container_engines::{EngineConfigError, NamedEngine, RawEngine};
use autoheal_sandbox::manifest::ManifestBounds;

/// The configuration as written. Its field names are the config keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Address of the HTTP server.
    pub listen: SocketAddr,
    /// Master kill switch: nothing is executed for real unless true.
    pub enabled: bool,
    /// Record what plugins would do instead of doing it.
    pub dry_run: bool,
    /// The JSONL audit trail.
    pub audit_path: PathBuf,
    /// When the audit writer calls fsync.
    pub audit_fsync: FsyncPolicy,
    /// `[audit]`: when the trail rolls into segments, and which are kept.
    pub audit: RawAudit,
    /// Directory of plugin manifests (`NAME.toml`) and components.
    pub plugins_dir: PathBuf,
    /// Where precompiled plugin artifacts are cached between starts.
    pub cache_dir: PathBuf,
    /// The key that proves an artifact in `cache_dir` was written by this
    /// host; outside `cache_dir`. Empty: `CACHE_DIR.key` beside it.
    pub cache_key_file: PathBuf,
    /// Reload plugins when the plugins directory changes. Where watching
    /// does not work (some network filesystems), `POST /plugins/reload`.
    pub watch_plugins: bool,
    /// Cooldown for alerts that have no more specific one.
    pub default_cooldown_sec: u64,
    /// Per-alertname cooldowns, overriding the default (a plugin manifest's
    /// own cooldown overrides both).
    pub cooldowns: BTreeMap<String, u64>,
    /// Alertmanager, for silences ("ack"), notices, verify polls and the
    /// firing alerts of `/vision`: one URL, or every member of an HA
    /// cluster (asked in turn; notices go to all).
    pub alertmanager_url: UrlList,
    /// Prometheus, whose recording rules `/vision` and `autoheal vision` read,
    /// and which plugins' `prometheus.query` asks.
    pub prometheus_url: String,
    /// File of the bearer token sent with plugins' Prometheus queries.
    pub prometheus_token_file: Option<PathBuf>,
    /// PEM CA bundle that signs an `https://` `prometheus_url` (unset: the
    /// system's roots), for plugins' queries.
    pub prometheus_ca_file: Option<PathBuf>,
    /// How operators reach this host (used in links).
    pub public_url: String,
    /// Largest webhook body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Alerts of one webhook that are decided on; the rest are counted as
    /// truncated (Alertmanager's `max_alerts` convention).
    pub max_alerts_per_webhook: usize,
    /// Labels plus annotations one alert may have; more is a 422.
    pub max_labels_per_alert: usize,
    /// Longest label or annotation name or value, in bytes; longer is a 422.
    pub max_label_bytes: usize,
    /// Actions pending (waiting for a sandbox slot or running) at once; an
    /// alert beyond it is skipped as `overloaded`.
    pub max_pending_actions: usize,
    /// Webhook requests handled at once; beyond it the answer is 503.
    pub max_concurrent_webhooks: usize,
    /// Reads of the trail at once (a `GET /audit`, one batch of a
    /// `GET /events` catch-up); beyond it a reader waits its turn, so that
    /// readers never take every core from `/alert`.
    pub max_concurrent_audit_reads: usize,
    /// How long `GET /vision` reuses what it read from Prometheus and
    /// Alertmanager (milliseconds; 0: read again for every request, still
    /// one read at a time), so that readers cannot multiply their load.
    pub vision_cache_ms: u64,
    /// Share (0 to 1) of real actions failed on purpose, to drill alerting
    /// on failures (`AutohealActionFailureSpike`); 0 in production.
    pub chaos_failure_rate: f64,
    /// Concurrent `GET /events` subscribers; beyond it the answer is 503.
    pub sse_max_subscribers: usize,
    /// Longest silence `/ack` may create, e.g. `24h` (at most 90 days).
    pub ack_max_duration: String,
    /// The container engine: `unix:///path.sock`, `tcp://host:port`, or
    /// `none`. Unset: `DOCKER_HOST`, else Docker's socket, else Podman's.
    pub container_engine: Option<String>,
    /// Deadline of each engine call (a restart gets the stop timeout on top).
    pub engine_timeout_sec: u64,
    /// `[circuit_breaker]`: real restarts of one container per window.
    pub circuit_breaker: BreakerConfig,
    /// `[budget]`: how many real actions at once and per window, in all.
    pub budget: RawBudget,
    /// `[notify]`: autoheal's own alerts, posted to Alertmanager.
    pub notify: RawNotify,
    /// `[http]`: how long a client may take over a request, how many
    /// connections at once, how long a stop waits for requests.
    pub http: RawHttp,
    /// `[sandbox]`: the limits of the plugin runtime.
    pub sandbox: SandboxConfig,
    /// `[auth]`: who may call what.
    pub auth: RawAuth,
    /// `[cluster]`: replicas sharing claims and switches on etcd.
    pub cluster: RawCluster,
    /// `[engines.NAME]`: container engines besides `container_engine`.
    pub engines: BTreeMap<String, RawEngine>,
    /// `[[maintenance]]`: recurring windows during which the actions they
    /// cover are skipped as `paused`.
    pub maintenance: Vec<RawWindow>,
    /// `[secrets]`: values the host puts into plugins' HTTP requests, by
    /// name, each from `env`, `file` or `value`; never shown.
    pub secrets: BTreeMap<String, RawSecret>,
}

/// `[auth]` as written. Tokens themselves come from the environment
/// (`AUTOHEAL_WEBHOOK_TOKEN`, ...) or from the files named here, never from
/// the config file itself.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    /// File of webhook tokens (`POST /alert`), one per line.
    pub webhook_token_file: Option<PathBuf>,
    /// File of operator tokens (`/ack`, plugin reload and test, `/admin/*`).
    pub operator_token_file: Option<PathBuf>,
    /// File of read tokens; with none, read-only routes are open.
    pub read_token_file: Option<PathBuf>,
    /// Host names the server answers to, besides IP addresses, `localhost`
    /// and `public_url`'s host (a DNS-rebinding page sends another name).
    pub allowed_hosts: Vec<String>,
    /// Start even though actions run for real and `POST /alert` needs no
    /// credentials.
    pub allow_unauthenticated_real: bool,
    /// Webhook tokens from the environment.
    #[serde(skip)]
    pub webhook_tokens: Vec<String>,
    /// Operator tokens from the environment.
    #[serde(skip)]
    pub operator_tokens: Vec<String>,
    /// Read tokens from the environment.
    #[serde(skip)]
    pub read_tokens: Vec<String>,
    /// `[auth.tokens.NAME]`: named machine tokens, each with its roles.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tokens: BTreeMap<String, RawToken>,
    /// `[auth.oidc]`: people sign in through an OpenID provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc: Option<RawOidc>,
    /// `[[auth.roles]]`: the role each group of the groups claim gets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RawRoleRule>,
}

/// The validated `[auth]`: token sets (digests only) and the host names.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// Accepted on `POST /alert`; empty: the webhook is open.
    pub webhook: TokenSet,
    /// Accepted on the operator routes; empty: those routes are refused.
    pub operator: TokenSet,
    /// Accepted (with the operator tokens) on read routes; empty: they are open.
    pub read: TokenSet,
    /// Lowercase host names the server answers to besides IP addresses and `localhost`.
    pub allowed_hosts: Vec<String>,
    /// Real mode with an open webhook is accepted.
    pub allow_unauthenticated_real: bool,
    /// `[auth.tokens.NAME]`, digests only.
    pub named: NamedTokens,
    /// Sign-in through an OpenID provider, when `[auth.oidc]` is set.
    pub oidc: Option<OidcSettings>,
    /// `[[auth.roles]]`, in order.
    pub roles: Vec<RoleRule>,
}

impl Auth {
    /// Whether actions may run for real: only while `POST /alert` takes a
    /// token, or the risk is accepted (`allow_unauthenticated_real`).
    pub fn allows_real(&self) -> bool {
        self.webhook_needs_token() || self.allow_unauthenticated_real
    }

    /// Whether some credential proves `role` (a shared token's set is not
    /// empty, or a named token grants it): a route needing a role nobody
    /// can hold is open (webhook, read) or refused (operator).
    pub fn can_grant(&self, role: Role) -> bool {
        let shared = match role {
            Role::Webhook => !self.webhook.is_empty(),
            Role::Viewer => !self.read.is_empty() || !self.operator.is_empty(),
            Role::Operator | Role::Approver => !self.operator.is_empty(),
        };
        shared || self.named_grant(role) || self.signin_grants(role)
    }

    /// A named token holds `role` on some plugin.
    fn named_grant(&self, role: Role) -> bool {
        self.named.iter().any(|t| t.grants.iter().any(|g| g.role == role))
    }

    /// People can sign in and some `[[auth.roles]]` rule gives `role`.
    fn signin_grants(&self, role: Role) -> bool {
        self.oidc.is_some() && self.roles.iter().any(|r| r.role == role)
    }

    /// Read routes take credentials: a read token is set, or a named token
    /// or a signed-in person can be made a viewer. Otherwise they are open,
    /// as before there were roles.
    pub fn reads_need_credentials(&self) -> bool {
        !self.read.is_empty() || self.named_grant(Role::Viewer) || self.signin_grants(Role::Viewer)
    }

    /// `POST /alert` takes a token: a shared webhook token or a named one is set.
    pub fn webhook_needs_token(&self) -> bool {
        self.can_grant(Role::Webhook)
    }
}

/// The configuration the host runs on: every value checked and typed.
/// Keys whose type does not change keep their [`RawConfig`] meaning.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address of the HTTP server.
    pub listen: SocketAddr,
    /// Master kill switch.
    pub enabled: bool,
    /// Record what plugins would do instead of doing it.
    pub dry_run: bool,
    /// The JSONL audit trail.
    pub audit_path: PathBuf,
    /// When the audit writer calls fsync.
    pub audit_fsync: FsyncPolicy,
    /// When the trail rolls into segments, and which are kept.
    pub audit_rotation: autoheal_core::audit::Rotation,
    /// Directory of plugin manifests and components.
    pub plugins_dir: PathBuf,
    /// Where precompiled plugin artifacts are cached.
    pub cache_dir: PathBuf,
    /// The compile cache's MAC key (never inside `cache_dir`).
    pub cache_key_file: PathBuf,
    /// Reload plugins when the plugins directory changes.
    pub watch_plugins: bool,
    /// Cooldown for alerts that have no more specific one.
    pub default_cooldown_sec: u64,
    /// Per-alertname cooldowns.
    pub cooldowns: BTreeMap<String, u64>,
    /// Alertmanager's members (silences, notices, firing alerts), asked
    /// through [`Members`]; one URL is a cluster of one.
    pub alertmanager: Members,
    /// Prometheus (the operations view, plugins' queries).
    pub prometheus_url: String,
    /// Bearer token file of plugins' Prometheus queries.
    pub prometheus_token_file: Option<PathBuf>,
    /// CA bundle of plugins' Prometheus queries.
    pub prometheus_ca_file: Option<PathBuf>,
    /// How operators reach this host.
    pub public_url: String,
    /// Largest webhook body accepted.
    pub max_body_bytes: usize,
    /// Alerts of one webhook that are decided on.
    pub max_alerts_per_webhook: usize,
    /// Labels plus annotations one alert may have.
    pub max_labels_per_alert: usize,
    /// Longest label or annotation name or value, in bytes.
    pub max_label_bytes: usize,
    /// Actions pending at once.
    pub max_pending_actions: usize,
    /// Webhook requests handled at once.
    pub max_concurrent_webhooks: usize,
    /// Trail reads at once (`GET /audit`, `GET /events` catch-up batches).
    pub max_concurrent_audit_reads: usize,
    /// How long `GET /vision` reuses its upstream reads.
    pub vision_cache: Duration,
    /// Share of real actions failed on purpose (a chaos drill).
    pub chaos_failure_rate: f64,
    /// Concurrent `GET /events` subscribers.
    pub sse_max_subscribers: usize,
    /// Longest silence `/ack` may create.
    pub ack_max_duration: Duration,
    /// The container engine asked for.
    pub container_engine: EngineSetting,
    /// Deadline of each engine call.
    pub engine_timeout: Duration,
    /// The restart circuit breaker.
    pub circuit_breaker: CircuitBreaker,
    /// The blast-radius budgets.
    pub budget: Budgets,
    /// Autoheal's own alerts to Alertmanager.
    pub notify: Notify,
    /// The HTTP server's deadlines and connection cap.
    pub http: HttpLimits,
    /// The limits of the plugin runtime.
    pub sandbox: SandboxConfig,
    /// Who may call what.
    pub auth: Auth,
    /// The etcd cluster this host is a replica of; `None`: it runs alone.
    pub cluster: Option<ClusterSettings>,
    /// The named container engines (`NAME/container` in manifests).
    pub engines: BTreeMap<String, NamedEngine>,
    /// `[[maintenance]]`, checked: the windows, in the order written.
    pub maintenance: std::sync::Arc<[crate::maintenance::Window]>,
    /// The secrets of `[secrets]`, read from their sources.
    pub secrets: std::sync::Arc<autoheal_sandbox::capability::Secrets>,
}

/// Which container engine the `container_engine` key asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineSetting {
    /// Unset: `DOCKER_HOST`, else Docker's socket, else Podman's (see
    /// [`autoheal_containers::discover`]).
    Discover,
    /// `none`: no engine; dry-run still works, real actions fail.
    Disabled,
    /// An address given in the config.
    At(EngineAddress),
}

/// The validated `[circuit_breaker]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreaker {
    /// Real restarts of one container allowed per window.
    pub max_restarts: u32,
    /// Real signals to one container allowed per window.
    pub max_signals: u32,
    /// Real commands run in one container allowed per window.
    pub max_execs: u32,
    /// HTTP requests that are effects, per origin per window.
    pub max_http_effects: u32,
    /// The window.
    pub window: Duration,
}

/// The blast-radius budgets of real actions; `None` is no bound.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Budgets {
    /// Real actions started per `window`, across all plugins.
    pub max_actions: Option<u32>,
    /// The window of `max_actions`.
    pub window: Duration,
    /// Real actions running at once.
    pub max_in_flight: Option<u32>,
    /// A label, and how many real actions may run at once for each of its values.
    pub per_label: Option<(String, u32)>,
}

/// Autoheal's own alerts (`AutohealActionFailed`, `AutohealBudgetExhausted`).
#[derive(Debug, Clone, PartialEq)]
pub struct Notify {
    /// Posted to `alertmanager_url` at all.
    pub enabled: bool,
    /// How long a notice fires after the last event that raised it.
    pub hold: Duration,
    /// How long an alert autoheal declines may go on firing before
    /// `AutohealNotRemediating` tells people.
    pub not_remediating_after: Duration,
}

/// `[notify]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNotify {
    /// Post autoheal's own alerts to `alertmanager_url`.
    pub enabled: bool,
    /// A duration such as `5m`.
    pub hold: String,
    /// A duration such as `5m`.
    pub not_remediating_after: String,
}

impl Default for RawNotify {
    fn default() -> Self {
        Self {
            enabled: true,
            hold: "5m".into(),
            not_remediating_after: "5m".into(),
        }
    }
}

/// The validated `[http]`: what a client may hold of the server, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// From a request's first byte to the end of its head (request line and headers).
    pub header_timeout: Duration,
    /// From the end of a request's head to the end of its body.
    pub body_timeout: Duration,
    /// How long a connection may wait with no request on it: before its
    /// first, and between one response and the next request.
    pub idle_timeout: Duration,
    /// Connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// How long a stop waits for requests in flight before it cuts them.
    pub stop_timeout: Duration,
}

/// `[http]` as written: durations such as `10s` or `500ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHttp {
    /// A request's head must arrive within this of its first byte.
    pub header_timeout: String,
    /// A request's body must arrive within this of its head.
    pub body_timeout: String,
    /// A connection with no request on it is closed after this.
    pub idle_timeout: String,
    /// Connections open at once.
    pub max_connections: usize,
    /// How long a stop waits for requests in flight.
    pub stop_timeout: String,
}

/// Longest any `[http]` timeout may be: a client that needs more is not one
/// the server should wait for.
const MAX_HTTP_TIMEOUT: Duration = Duration::from_secs(3600);

impl RawHttp {
    fn validate(&self) -> Result<HttpLimits, ConfigError> {
        let duration = |key: &'static str, text: &str, zero_ok: bool| {
            let invalid = |message: String| ConfigError::Invalid { key, message };
            let value = parse_duration(text).map_err(|e| invalid(e.to_string()))?;
            if (value.is_zero() && !zero_ok) || value > MAX_HTTP_TIMEOUT {
                let low = if zero_ok { "0s" } else { "longer than 0s" };
                return Err(invalid(format!("must be {low} and at most 1h")));
            }
            Ok(value)
        };
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "http.max_connections",
                message: "must be at least 1".into(),
            });
        }
        Ok(HttpLimits {
            header_timeout: duration("http.header_timeout", &self.header_timeout, false)?,
            body_timeout: duration("http.body_timeout", &self.body_timeout, false)?,
            idle_timeout: duration("http.idle_timeout", &self.idle_timeout, false)?,
            max_connections: self.max_connections,
            // 0: cut what is in flight at once.
            stop_timeout: duration("http.stop_timeout", &self.stop_timeout, true)?,
        })
    }
}

/// The defaults; the configuration table (`docs/configuration.md`) says why, in short.
impl Default for RawHttp {
    fn default() -> Self {
        Self {
            // A head is a few hundred bytes that Alertmanager, curl and
            // browsers send at once; 10 s allows a very slow link.
            header_timeout: "10s".into(),
            // `max_body_bytes` (1 MiB) at ~35 KB/s.
            body_timeout: "30s".into(),
            // The console polls every few seconds and keeps its connection;
            // an idle one is closed sooner when the cap is reached.
            idle_timeout: "60s".into(),
            // Well under common descriptor limits, far above what
            // Alertmanager, a few consoles and scrapers open.
            max_connections: 1024,
            // A webhook is answered in milliseconds (actions run after the
            // answer, and are drained separately); what is still in flight
            // after 5 s is a slow or hostile client. It leaves room under
            // `docker stop`'s 10 s for the drain and the last record.
            stop_timeout: "5s".into(),
        }
    }
}

/// `[budget]` as written: 0 (or an empty `per_label`) is no bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBudget {
    /// Real actions started per `window`, across all plugins.
    pub max_actions: u32,
    /// A duration such as `1h`.
    pub window: String,
    /// Real actions running at once.
    pub max_in_flight: u32,
    /// A label (e.g. `service`) whose every value gets `max_in_flight_per_label`.
    pub per_label: String,
    /// Real actions running at once per value of `per_label`.
    pub max_in_flight_per_label: u32,
}

impl RawBudget {
    fn validate(&self) -> Result<Budgets, ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid { key, message };
        let window = parse_duration(&self.window).map_err(|e| invalid("budget.window", e.to_string()))?;
        let label = self.per_label.trim();
        if !label.is_empty() && self.max_in_flight_per_label == 0 {
            return Err(invalid(
                "budget.max_in_flight_per_label",
                "must be at least 1 when budget.per_label is set".into(),
            ));
        }
        let some = |n: u32| (n > 0).then_some(n);
        Ok(Budgets {
            max_actions: some(self.max_actions),
            window,
            max_in_flight: some(self.max_in_flight),
            per_label: (!label.is_empty()).then(|| (label.to_owned(), self.max_in_flight_per_label)),
        })
    }
}

impl Default for RawBudget {
    fn default() -> Self {
        Self {
            max_actions: 0,
            window: "1h".into(),
            max_in_flight: 0,
            per_label: String::new(),
            max_in_flight_per_label: 1,
        }
    }
}

/// The circuit breakers of effects: real restarts, signals and commands of
/// one container per window, each counted apart.
/// `[circuit_breaker]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Real restarts of one container allowed per window.
    pub max_restarts: u32,
    /// Real signals to one container allowed per window.
    pub max_signals: u32,
    /// Real commands run in one container allowed per window.
    pub max_execs: u32,
    /// HTTP requests that are effects (`POST`, ...) sent to one origin
    /// (`scheme://host:port`) per window.
    pub max_http_effects: u32,
    /// A duration such as `1h` or `30m`.
    pub window: String,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            max_restarts: 3,
            // A reload or a fix is gentler than a restart, but one that has
            // to be repeated this often per hour is not fixing anything.
            max_signals: 6,
            max_execs: 6,
            max_http_effects: 6,
            window: "1h".into(),
        }
    }
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9009)),
            enabled: false,
            dry_run: true,
            audit_path: PathBuf::from("data/audit.jsonl"),
            audit_fsync: FsyncPolicy::EveryBatch,
            audit: RawAudit::default(),
            plugins_dir: PathBuf::from("plugins.d"),
            cache_dir: PathBuf::from("data/cache"),
            cache_key_file: PathBuf::new(),
            watch_plugins: true,
            default_cooldown_sec: 600,
            cooldowns: BTreeMap::new(),
            alertmanager_url: "http://127.0.0.1:9093".into(),
            prometheus_url: "http://127.0.0.1:9090".into(),
            prometheus_token_file: None,
            prometheus_ca_file: None,
            public_url: "http://127.0.0.1:9009".into(),
            max_body_bytes: 1024 * 1024,
            max_alerts_per_webhook: 1000,
            max_labels_per_alert: 64,
            max_label_bytes: 4096,
            max_pending_actions: 1024,
            max_concurrent_webhooks: 64,
            max_concurrent_audit_reads: 2,
            vision_cache_ms: 5000,
            chaos_failure_rate: 0.0,
            sse_max_subscribers: 2048,
            ack_max_duration: "24h".into(),
            container_engine: None,
            engine_timeout_sec: 10,
            circuit_breaker: BreakerConfig::default(),
            budget: RawBudget::default(),
            notify: RawNotify::default(),
            http: RawHttp::default(),
            sandbox: SandboxConfig::default(),
            auth: RawAuth::default(),
            cluster: RawCluster::default(),
            engines: BTreeMap::new(),
            maintenance: Vec::new(),
            secrets: BTreeMap::new(),
        }
    }
}

/// A configuration that cannot be used; each names where it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the filesystem said.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for these keys.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// An environment variable has a bad value.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What was wrong.
        message: String,
    },
    /// A key's value is out of bounds or not understood.
    #[error("config key `{key}`: {message}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What was wrong.
        message: String,
    },
    /// A `[cluster]` key's value.
    #[error(transparent)]
    Cluster(#[from] ClusterConfigError),
    /// An `[engines.NAME]` table.
    #[error(transparent)]
    Engine(#[from] EngineConfigError),
    /// A `[[maintenance]]` window.
    #[error(transparent)]
    Maintenance(#[from] MaintenanceConfigError),
    /// `[auth.oidc]` or `[[auth.roles]]`.
    #[error(transparent)]
    Oidc(#[from] OidcConfigError),
    /// A `[secrets]` entry.
    #[error(transparent)]
    Secret(#[from] SecretConfigError),
    /// An `[auth.tokens.NAME]` table.
    #[error(transparent)]
    Token(#[from] TokenConfigError),
}

/// A key set from text (an environment variable or a flag) that did not take.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// The text is not a value of the key's type.
    #[error("invalid value {value:?} for `{key}`: expected {expected}")]
    Invalid {
        /// The key.
        key: String,
        /// The text given.
        value: String,
        /// What the key takes.
        expected: &'static str,
    },
    /// No such key can be set from text.
    #[error("unknown config key `{0}`")]
    UnknownKey(String),
    /// A key that only means something beside a table the config lacks
    /// (the value, maybe a secret, is not shown).
    #[error("`{key}` is set only with {needs} in the config file")]
    Needs {
        /// The key.
        key: String,
        /// The table it needs.
        needs: &'static str,
    },
    /// A token list with a token that cannot be used.
    #[error("`{key}`: {source}")]
    Token {
        /// The key.
        key: String,
        /// What is wrong with a token (never the token).
        source: TokenError,
    },
}

fn tokens(key: &str, value: &str) -> Result<Vec<String>, SetError> {
    TokenSet::parse_list(value).map_err(|source| SetError::Token {
        key: key.to_owned(),
        source,
    })
}

/// `a, b,,c` → `["a", "b", "c"]`: a list in one variable.
fn comma_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Environment variables and the key each overrides. The first six are the
/// original system's and keep their meaning.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("AUTOHEAL_ENABLED", "enabled"),
    ("AUTOHEAL_DRY_RUN", "dry_run"),
    ("AUTOHEAL_AUDIT_PATH", "audit_path"),
    ("AUTOHEAL_DEFAULT_COOLDOWN_SEC", "default_cooldown_sec"),
    ("ALERTMANAGER_URL", "alertmanager_url"),
    ("AUTOHEAL_PUBLIC_URL", "public_url"),
    ("AUTOHEAL_LISTEN", "listen"),
    ("AUTOHEAL_PLUGINS_DIR", "plugins_dir"),
    ("AUTOHEAL_CACHE_DIR", "cache_dir"),
    ("AUTOHEAL_CACHE_KEY_FILE", "cache_key_file"),
    ("AUTOHEAL_AUDIT_FSYNC", "audit_fsync"),
    ("AUTOHEAL_CONTAINER_ENGINE", "container_engine"),
    ("PROMETHEUS_URL", "prometheus_url"),
    ("AUTOHEAL_PROMETHEUS_TOKEN_FILE", "prometheus_token_file"),
    ("AUTOHEAL_PROMETHEUS_CA_FILE", "prometheus_ca_file"),
    ("AUTOHEAL_CHAOS_FAILURE_RATE", "chaos_failure_rate"),
    ("AUTOHEAL_WEBHOOK_TOKEN", "auth.webhook_tokens"),
    ("AUTOHEAL_WEBHOOK_TOKEN_FILE", "auth.webhook_token_file"),
    ("AUTOHEAL_OPERATOR_TOKEN", "auth.operator_tokens"),
    ("AUTOHEAL_OPERATOR_TOKEN_FILE", "auth.operator_token_file"),
    ("AUTOHEAL_READ_TOKEN", "auth.read_tokens"),
    ("AUTOHEAL_READ_TOKEN_FILE", "auth.read_token_file"),
    ("AUTOHEAL_ALLOWED_HOSTS", "auth.allowed_hosts"),
    ("AUTOHEAL_OIDC_CLIENT_SECRET", "auth.oidc.client_secret"),
    ("AUTOHEAL_CLUSTER", "cluster.etcd"),
    ("AUTOHEAL_REPLICA", "cluster.replica"),
    ("AUTOHEAL_CLUSTER_SECRET_FILE", "cluster.secret_file"),
];

impl RawConfig {
    /// Reads a TOML config file (unknown keys are errors).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })
    }

    /// Parses TOML text (unknown keys are errors).
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Applies the variables of [`ENV_VARS`] found by `lookup`.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for &(var, key) in ENV_VARS {
            if let Some(value) = lookup(var) {
                self.set(key, &value).map_err(|e| ConfigError::Env {
                    var,
                    message: e.to_string(),
                })?;
            }
        }
        Ok(())
    }

    /// Sets one top-level key from its text form (as in an environment variable).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SetError> {
        let invalid = |expected: &'static str| SetError::Invalid {
            key: key.to_owned(),
            value: value.to_owned(),
            expected,
        };
        match key {
            "enabled" => self.enabled = parse_bool(value).ok_or_else(|| invalid("true or false"))?,
            "dry_run" => self.dry_run = parse_bool(value).ok_or_else(|| invalid("true or false"))?,
            "audit_path" => self.audit_path = value.into(),
            "plugins_dir" => self.plugins_dir = value.into(),
            "cache_dir" => self.cache_dir = value.into(),
            "cache_key_file" => self.cache_key_file = value.into(),
            "default_cooldown_sec" => {
                self.default_cooldown_sec = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("a whole number of seconds"))?
            }
            "alertmanager_url" => self.alertmanager_url = UrlList::parse_comma_separated(value),
            "prometheus_url" => self.prometheus_url = value.into(),
            "prometheus_token_file" => self.prometheus_token_file = Some(value.trim().into()),
            "prometheus_ca_file" => self.prometheus_ca_file = Some(value.trim().into()),
            "public_url" => self.public_url = value.into(),
            "container_engine" => self.container_engine = Some(value.trim().to_owned()),
            "listen" => {
                self.listen = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("an address like 127.0.0.1:9009"))?
            }
            "audit_fsync" => {
                self.audit_fsync = match value.trim() {
                    "every_batch" => FsyncPolicy::EveryBatch,
                    "never" => FsyncPolicy::Never,
                    _ => return Err(invalid("every_batch or never")),
                }
            }
            "chaos_failure_rate" => {
                self.chaos_failure_rate = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("a number between 0 and 1"))?
            }
            "auth.webhook_tokens" => self.auth.webhook_tokens = tokens(key, value)?,
            "auth.operator_tokens" => self.auth.operator_tokens = tokens(key, value)?,
            "auth.read_tokens" => self.auth.read_tokens = tokens(key, value)?,
            "auth.webhook_token_file" => self.auth.webhook_token_file = Some(value.trim().into()),
            "auth.operator_token_file" => self.auth.operator_token_file = Some(value.trim().into()),
            "auth.read_token_file" => self.auth.read_token_file = Some(value.trim().into()),
            "cluster.etcd" => self.cluster.etcd = comma_list(value),
            "auth.allowed_hosts" => self.auth.allowed_hosts = comma_list(value),
            // Only with an `[auth.oidc]` table: the secret alone signs no one in.
            "auth.oidc.client_secret" => match &mut self.auth.oidc {
                Some(oidc) => oidc.client_secret = Some(value.trim().to_owned()),
                None => {
                    return Err(SetError::Needs {
                        key: key.to_owned(),
                        needs: "an [auth.oidc] table",
                    });
                }
            },
            "cluster.replica" => self.cluster.replica = value.trim().to_owned(),
            "cluster.secret_file" => self.cluster.secret_file = value.trim().to_owned(),
            _ => return Err(SetError::UnknownKey(key.to_owned())),
        }
        Ok(())
    }

    /// Checks what types alone cannot and parses what is text, once.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid { key, message };
        let alertmanager = self.alertmanager_members()?;
        for (key, url) in [
            ("prometheus_url", &self.prometheus_url),
            ("public_url", &self.public_url),
        ] {
            check_http_url(key, url)?;
        }
        if self.max_body_bytes == 0 {
            return Err(invalid("max_body_bytes", "must be greater than 0".into()));
        }
        // Zero of any of these would refuse every webhook, action or read.
        for (key, value) in [
            ("max_concurrent_webhooks", self.max_concurrent_webhooks),
            ("max_pending_actions", self.max_pending_actions),
            ("max_concurrent_audit_reads", self.max_concurrent_audit_reads),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1".into()));
            }
        }
        if self.audit_path.as_os_str().is_empty() {
            return Err(invalid("audit_path", "must not be empty".into()));
        }
        let audit_rotation = self.audit.validate().map_err(|e| invalid(e.key, e.message))?;
        if !(1..=4096).contains(&self.sandbox.max_memory_mb) {
            return Err(invalid(
                "sandbox.max_memory_mb",
                "must be between 1 and 4096".into(),
            ));
        }
        if !(1_000..=3_600_000).contains(&self.sandbox.compile_timeout_ms) {
            return Err(invalid(
                "sandbox.compile_timeout_ms",
                "must be between 1000 (1 s) and 3600000 (1 h)".into(),
            ));
        }
        if !(256..=65_536).contains(&self.sandbox.compile_memory_mb) {
            return Err(invalid(
                "sandbox.compile_memory_mb",
                "must be between 256 and 65536".into(),
            ));
        }
        if !(1..=64).contains(&self.sandbox.compile_concurrency) {
            return Err(invalid(
                "sandbox.compile_concurrency",
                "must be between 1 and 64 (compiles at once; each may use compile_memory_mb)".into(),
            ));
        }
        for (key, max) in [
            ("circuit_breaker.max_restarts", self.circuit_breaker.max_restarts),
            ("circuit_breaker.max_signals", self.circuit_breaker.max_signals),
            ("circuit_breaker.max_execs", self.circuit_breaker.max_execs),
            (
                "circuit_breaker.max_http_effects",
                self.circuit_breaker.max_http_effects,
            ),
        ] {
            if max == 0 {
                return Err(invalid(key, "must be at least 1".into()));
            }
        }
        let window = parse_duration(&self.circuit_breaker.window)
            .map_err(|e| invalid("circuit_breaker.window", e.to_string()))?;
        let budget = self.budget.validate()?;
        let cluster = self.cluster.validate(self.listen.port())?;
        let engines = crate::container_engines::validate(&self.engines)?;
        let maintenance = maintenance::validate(&self.maintenance, autoheal_core::util::unix_now())?.into();
        let http = self.http.validate()?;
        let secrets = secrets::resolve(&self.secrets, |var| std::env::var(var).ok())?.into();
        let hold = parse_duration(&self.notify.hold).map_err(|e| invalid("notify.hold", e.to_string()))?;
        if hold.is_zero() {
            return Err(invalid("notify.hold", "must be longer than zero".into()));
        }
        let not_remediating_after = parse_duration(&self.notify.not_remediating_after)
            .map_err(|e| invalid("notify.not_remediating_after", e.to_string()))?;
        if not_remediating_after.is_zero() {
            return Err(invalid(
                "notify.not_remediating_after",
                "must be longer than zero".into(),
            ));
        }
        if !(1..=600).contains(&self.engine_timeout_sec) {
            return Err(invalid("engine_timeout_sec", "must be between 1 and 600".into()));
        }
        let container_engine = match self.container_engine.as_deref().map(str::trim) {
            None | Some("") => EngineSetting::Discover,
            Some("none") => EngineSetting::Disabled,
            Some(text) => EngineSetting::At(
                EngineAddress::parse(text).map_err(|e| invalid("container_engine", e.to_string()))?,
            ),
        };
        if !(1..=1000).contains(&self.sandbox.max_concurrent) {
            return Err(invalid(
                "sandbox.max_concurrent",
                "must be between 1 and 1000".into(),
            ));
        }
        let ack_max_duration =
            parse_duration(&self.ack_max_duration).map_err(|e| invalid("ack_max_duration", e.to_string()))?;
        if ack_max_duration.is_zero() || ack_max_duration > crate::silence::MAX_SILENCE {
            return Err(invalid(
                "ack_max_duration",
                "must be longer than zero and at most 90d".into(),
            ));
        }
        let cache_key_file = self.cache_key_file()?;
        let auth = self.validate_auth()?;
        if self.enabled && !self.dry_run && !auth.allows_real() {
            return Err(invalid(
                "auth",
                "enabled = true and dry_run = false, but POST /alert takes no credentials: anyone who \
                 can reach it could make autoheal restart containers. Set AUTOHEAL_WEBHOOK_TOKEN (or \
                 [auth] webhook_token_file) and send it from Alertmanager's http_config, or set \
                 [auth] allow_unauthenticated_real = true to accept the risk"
                    .into(),
            ));
        }
        Ok(Config {
            listen: self.listen,
            enabled: self.enabled,
            dry_run: self.dry_run,
            audit_path: self.audit_path.clone(),
            audit_fsync: self.audit_fsync,
            audit_rotation,
            plugins_dir: self.plugins_dir.clone(),
            cache_dir: self.cache_dir.clone(),
            cache_key_file,
            watch_plugins: self.watch_plugins,
            default_cooldown_sec: self.default_cooldown_sec,
            cooldowns: self.cooldowns.clone(),
            alertmanager,
            prometheus_url: self.prometheus_url.clone(),
            prometheus_token_file: self.prometheus_token_file.clone(),
            prometheus_ca_file: self.prometheus_ca_file.clone(),
            public_url: self.public_url.clone(),
            max_body_bytes: self.max_body_bytes,
            max_alerts_per_webhook: self.max_alerts_per_webhook,
            max_labels_per_alert: self.max_labels_per_alert,
            max_label_bytes: self.max_label_bytes,
            max_pending_actions: self.max_pending_actions,
            max_concurrent_webhooks: self.max_concurrent_webhooks,
            max_concurrent_audit_reads: self.max_concurrent_audit_reads,
            vision_cache: Duration::from_millis(self.vision_cache_ms),
            chaos_failure_rate: self.chaos_failure_rate,
            sse_max_subscribers: self.sse_max_subscribers,
            ack_max_duration,
            container_engine,
            engine_timeout: Duration::from_secs(self.engine_timeout_sec),
            circuit_breaker: CircuitBreaker {
                max_restarts: self.circuit_breaker.max_restarts,
                max_signals: self.circuit_breaker.max_signals,
                max_execs: self.circuit_breaker.max_execs,
                max_http_effects: self.circuit_breaker.max_http_effects,
                window,
            },
            budget,
            notify: Notify {
                enabled: self.notify.enabled,
                hold,
                not_remediating_after,
            },
            http,
            sandbox: self.sandbox.clone(),
            auth,
            cluster,
            engines,
            maintenance,
            secrets,
        })
    }

    /// `alertmanager_url`'s members: each an http(s) URL, at least one.
    fn alertmanager_members(&self) -> Result<Members, ConfigError> {
        for url in self.alertmanager_url.urls() {
            check_http_url("alertmanager_url", url)?;
        }
        Members::new(self.alertmanager_url.urls().to_vec()).map_err(|e| ConfigError::Invalid {
            key: "alertmanager_url",
            message: e.to_string(),
        })
    }

    /// Token sets from the environment and the token files, and the host names.
    /// The compile cache's key file: as set, or beside `cache_dir`; never
    /// inside it, where whoever writes artifacts could also write the key.
    fn cache_key_file(&self) -> Result<PathBuf, ConfigError> {
        if self.cache_key_file.as_os_str().is_empty() {
            return Ok(autoheal_sandbox::CacheLocation::beside(&self.cache_dir).key_file);
        }
        let inside = |path: &Path| {
            let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
            absolute(path).starts_with(absolute(&self.cache_dir))
        };
        if inside(&self.cache_key_file) {
            return Err(ConfigError::Invalid {
                key: "cache_key_file",
                message: format!(
                    "{} is inside cache_dir {}: whoever can write the cache could forge its artifacts",
                    self.cache_key_file.display(),
                    self.cache_dir.display()
                ),
            });
        }
        Ok(self.cache_key_file.clone())
    }

    fn validate_auth(&self) -> Result<Auth, ConfigError> {
        let set = |key: &'static str, from_env: &[String], file: &Option<PathBuf>| {
            let mut tokens = from_env.to_vec();
            if let Some(path) = file {
                let from_file = TokenSet::read_file(path).map_err(|e| ConfigError::Invalid {
                    key,
                    message: e.to_string(),
                })?;
                if from_file.is_empty() {
                    return Err(ConfigError::Invalid {
                        key,
                        message: format!("{} holds no token", path.display()),
                    });
                }
                tokens.extend(from_file);
            }
            Ok(TokenSet::new(tokens.iter().map(String::as_str)))
        };
        let raw = &self.auth;
        let mut allowed_hosts: Vec<String> = raw
            .allowed_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        if let Some(host) = url_host(&self.public_url) {
            allowed_hosts.push(host);
        }
        let webhook = set(
            "auth.webhook_token_file",
            &raw.webhook_tokens,
            &raw.webhook_token_file,
        )?;
        let operator = set(
            "auth.operator_token_file",
            &raw.operator_tokens,
            &raw.operator_token_file,
        )?;
        let read = set("auth.read_token_file", &raw.read_tokens, &raw.read_token_file)?;
        let named = tokens::resolve(&raw.tokens, &[&webhook, &operator, &read], |var| {
            std::env::var(var).ok()
        })?;
        Ok(Auth {
            webhook,
            operator,
            read,
            allowed_hosts,
            allow_unauthenticated_real: raw.allow_unauthenticated_real,
            named,
            oidc: raw
                .oidc
                .as_ref()
                .map(|oidc| oidc.validate(&self.public_url))
                .transpose()?,
            roles: oidc::validate_roles(&raw.roles)?,
        })
    }
}

fn check_http_url(key: &'static str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        key,
        message: format!("{url:?} is not an http(s) URL"),
    })
}

/// The lowercase host name of an `http(s)://host[:port]/...` URL.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

impl Config {
    /// A replica whose `public_url` is a loopback address: the other
    /// replicas would call themselves when they ask it for its trail or
    /// forward an answer to it. Said at start (a default left in place is
    /// the usual cause); a single host does not care.
    pub fn unreachable_public_url(&self) -> Option<&str> {
        self.cluster.as_ref()?;
        let host = url_host(&self.public_url)?;
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
        loopback.then_some(self.public_url.as_str())
    }
}

impl Config {
    /// True only when actions may touch the world: the original system's rule.
    pub fn executes_for_real(&self) -> bool {
        self.enabled && !self.dry_run
    }

    /// What plugin manifests are checked against: the same for `serve`,
    /// hot reload and `autoheal plugin check|test`.
    pub fn manifest_bounds(&self) -> ManifestBounds {
        ManifestBounds {
            max_memory_mb: self.sandbox.max_memory_mb,
        }
    }

    /// Cooldown for an alert when its plugin's manifest names none.
    pub fn cooldown_for(&self, alertname: &str) -> u64 {
        self.cooldowns
            .get(alertname)
            .copied()
            .unwrap_or(self.default_cooldown_sec)
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe() {
        let config = RawConfig::default().validate().unwrap();
        assert!(!config.enabled);
        assert!(config.dry_run);
        assert!(!config.executes_for_real());
        assert_eq!(config.default_cooldown_sec, 600);
        assert_eq!(config.listen.to_string(), "127.0.0.1:9009");
        assert_eq!(config.container_engine, EngineSetting::Discover);
        assert_eq!(config.circuit_breaker.window, Duration::from_secs(3600));
    }

    #[test]
    fn a_bound_of_zero_is_refused_by_name() {
        for key in [
            "max_concurrent_audit_reads",
            "max_concurrent_webhooks",
            "max_pending_actions",
        ] {
            let raw = RawConfig::from_toml(&format!("{key} = 0\n")).unwrap();
            let err = raw.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
        let raw = RawConfig::from_toml("max_concurrent_audit_reads = 1\n").unwrap();
        assert_eq!(raw.validate().unwrap().max_concurrent_audit_reads, 1);
    }

    #[test]
    fn http_limits_are_parsed_and_checked_by_name() {
        let limits = RawConfig::default().validate().unwrap().http;
        assert_eq!(limits.header_timeout, Duration::from_secs(10));
        assert_eq!(limits.max_connections, 1024);
        let raw = RawConfig::from_toml(
            "[http]\nheader_timeout = \"500ms\"\nbody_timeout = \"2s\"\nstop_timeout = \"0s\"\n",
        )
        .unwrap();
        let limits = raw.validate().unwrap().http;
        assert_eq!(limits.header_timeout, Duration::from_millis(500));
        assert_eq!(limits.body_timeout, Duration::from_secs(2));
        assert_eq!(limits.stop_timeout, Duration::ZERO);
        for (text, key) in [
            ("header_timeout = \"0s\"", "http.header_timeout"),
            ("body_timeout = \"soon\"", "http.body_timeout"),
            ("idle_timeout = \"2h\"", "http.idle_timeout"),
            ("stop_timeout = \"2h\"", "http.stop_timeout"),
            ("max_connections = 0", "http.max_connections"),
        ] {
            let raw = RawConfig::from_toml(&format!("[http]\n{text}\n")).unwrap();
            let err = raw.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn unknown_key_is_named() {
        let err = RawConfig::from_toml("enabled = true\ndry_runn = false\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("dry_runn"), "{err}");
        let err = RawConfig::from_toml("[sandbox]\nmax_mem = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_mem"), "{err}");
    }

    #[test]
    fn env_overrides_file_and_errors_name_the_variable() {
        let mut raw = RawConfig::from_toml("enabled = false\n[cooldowns]\nX = 5\n").unwrap();
        raw.apply_env(|var| match var {
            "AUTOHEAL_ENABLED" => Some("true".into()),
            "AUTOHEAL_DRY_RUN" => Some("0".into()),
            "AUTOHEAL_DEFAULT_COOLDOWN_SEC" => Some("30".into()),
            // Real mode needs webhook credentials.
            "AUTOHEAL_WEBHOOK_TOKEN" => Some("a-webhook-token-0123456789".into()),
            _ => None,
        })
        .unwrap();
        let config = raw.validate().unwrap();
        assert!(config.executes_for_real());
        assert_eq!(config.cooldown_for("X"), 5);
        assert_eq!(config.cooldown_for("Y"), 30);

        let err = raw
            .apply_env(|var| (var == "AUTOHEAL_DEFAULT_COOLDOWN_SEC").then(|| "ten".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("AUTOHEAL_DEFAULT_COOLDOWN_SEC"), "{err}");
        assert!(err.contains("ten"), "{err}");
    }

    #[test]
    fn real_mode_with_an_open_webhook_is_refused_unless_overridden() {
        let mut raw = RawConfig {
            enabled: true,
            dry_run: false,
            ..RawConfig::default()
        };
        let err = raw.validate().unwrap_err().to_string();
        assert!(err.contains("AUTOHEAL_WEBHOOK_TOKEN"), "{err}");
        assert!(err.contains("allow_unauthenticated_real"), "{err}");
        raw.auth.allow_unauthenticated_real = true;
        assert!(raw.validate().unwrap().executes_for_real());
        raw.auth.allow_unauthenticated_real = false;
        raw.set("auth.webhook_tokens", "a-webhook-token-0123456789")
            .unwrap();
        assert!(!raw.validate().unwrap().auth.webhook.is_empty());
        // Dry-run needs no credentials.
        raw.auth.webhook_tokens.clear();
        raw.dry_run = true;
        assert!(raw.validate().is_ok());
    }

    #[test]
    fn token_files_are_read_and_short_tokens_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(
            &file,
            "# rotated 2026-12\nold-token-0123456789\n\nnew-token-0123456789\n",
        )
        .unwrap();
        let mut raw = RawConfig::default();
        raw.set("auth.operator_token_file", file.to_str().unwrap())
            .unwrap();
        let auth = raw.validate().unwrap().auth;
        assert!(
            auth.operator.accepts("old-token-0123456789") && auth.operator.accepts("new-token-0123456789")
        );
        assert!(!auth.operator.accepts("# rotated 2026-12"));
        std::fs::write(&file, "short\n").unwrap();
        let err = raw.validate().unwrap_err().to_string();
        assert!(
            err.contains("auth.operator_token_file") && !err.contains("short\n"),
            "{err}"
        );
        let err = raw.set("auth.webhook_tokens", "tiny").unwrap_err().to_string();
        assert!(err.contains("16"), "{err}");
    }

    #[test]
    fn validate_names_the_key() {
        let raw = RawConfig {
            alertmanager_url: "alertmanager:9093".into(),
            ..RawConfig::default()
        };
        let err = raw.validate().unwrap_err().to_string();
        assert!(err.contains("alertmanager_url"), "{err}");
    }

    #[test]
    fn alertmanager_url_takes_one_url_or_a_list() {
        let one = RawConfig::from_toml("alertmanager_url = \"http://am:9093\"\n").unwrap();
        assert_eq!(one.validate().unwrap().alertmanager.urls(), ["http://am:9093"]);
        // Written back as it was written: a single URL stays a string.
        let written = toml::Value::try_from(&one).unwrap();
        assert_eq!(
            written["alertmanager_url"],
            toml::Value::String("http://am:9093".into())
        );

        let pair = RawConfig::from_toml("alertmanager_url = [\"http://am-0:9093\", \"https://am-1:9093\"]\n")
            .unwrap();
        let config = pair.validate().unwrap();
        assert_eq!(
            config.alertmanager.urls(),
            ["http://am-0:9093", "https://am-1:9093"]
        );
        let written = toml::Value::try_from(&pair).unwrap();
        assert!(written["alertmanager_url"].is_array(), "{written}");
        assert_eq!(written.try_into::<RawConfig>().unwrap(), pair);

        let err = RawConfig::from_toml("alertmanager_url = 9093\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("a URL or an array of URLs"), "{err}");
    }

    #[test]
    fn alertmanager_url_list_is_validated_member_by_member() {
        let empty = RawConfig::from_toml("alertmanager_url = []\n").unwrap();
        let err = empty.validate().unwrap_err().to_string();
        assert!(err.contains("alertmanager_url") && err.contains("empty"), "{err}");

        let bad = RawConfig::from_toml("alertmanager_url = [\"http://am-0:9093\", \"am-1:9093\"]\n").unwrap();
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("alertmanager_url") && err.contains("\"am-1:9093\""),
            "{err}"
        );
    }

    #[test]
    fn alertmanager_url_variable_is_comma_separated() {
        let mut raw = RawConfig::default();
        raw.apply_env(|var| {
            (var == "ALERTMANAGER_URL").then(|| "http://am-0:9093, http://am-1:9093,".to_owned())
        })
        .unwrap();
        assert_eq!(
            raw.validate().unwrap().alertmanager.urls(),
            ["http://am-0:9093", "http://am-1:9093"]
        );
        raw.apply_env(|var| (var == "ALERTMANAGER_URL").then(|| " , ".to_owned()))
            .unwrap();
        let err = raw.validate().unwrap_err().to_string();
        assert!(err.contains("alertmanager_url") && err.contains("empty"), "{err}");
    }

    #[test]
    fn text_values_are_parsed_once_into_types() {
        let raw = RawConfig::from_toml(
            "container_engine = \"tcp://127.0.0.1:2375\"\nengine_timeout_sec = 7\n[circuit_breaker]\nwindow = \"90s\"\n",
        )
        .unwrap();
        let config = raw.validate().unwrap();
        assert_eq!(
            config.container_engine,
            EngineSetting::At(EngineAddress::Tcp("127.0.0.1:2375".into()))
        );
        assert_eq!(config.engine_timeout, Duration::from_secs(7));
        assert_eq!(config.circuit_breaker.window, Duration::from_secs(90));
        let none = RawConfig::from_toml("container_engine = \"none\"\n").unwrap();
        assert_eq!(none.validate().unwrap().container_engine, EngineSetting::Disabled);
        for (text, key) in [
            ("container_engine = \"ftp://x\"\n", "container_engine"),
            ("[circuit_breaker]\nwindow = \"soon\"\n", "circuit_breaker.window"),
        ] {
            let err = RawConfig::from_toml(text)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    /// The configuration table (`docs/configuration.md`, a page of its own)
    /// lists exactly the keys defined here, each with its environment
    /// variable and its default.
    #[test]
    fn documented_table_matches_the_definition() {
        let section = include_str!("../../docs/configuration.md");
        let unquote = |cell: &str| cell.trim().trim_matches('`').trim_matches('"').to_owned();
        let documented: BTreeMap<String, (String, String)> = section
            .lines()
            .filter(|line| line.starts_with("| `"))
            .map(|line| {
                let cells: Vec<&str> = line.split('|').collect();
                (unquote(cells[1]), (unquote(cells[2]), unquote(cells[3])))
            })
            .collect();

        let env_of = |key: &str| {
            ENV_VARS
                .iter()
                .find(|(_, k)| *k == key)
                .map_or(String::new(), |(var, _)| (*var).to_owned())
        };
        let shown = |value: &toml::Value| match value {
            toml::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let mut defined = BTreeMap::new();
        let defaults = toml::Value::try_from(RawConfig::default()).unwrap();
        for (key, value) in defaults.as_table().unwrap() {
            match value {
                // A free-form table (per-alertname cooldowns) is one row.
                toml::Value::Table(_) if key == "cooldowns" || key == "engines" || key == "secrets" => {
                    defined.insert(format!("[{key}]"), (String::new(), String::new()));
                }
                // An array of tables, none by default: a row per key of one.
                toml::Value::Array(_) if key == "maintenance" => {
                    let keys = toml::Value::try_from(RawWindow::default()).unwrap();
                    for (sub, value) in keys.as_table().unwrap() {
                        let default = match sub.as_str() {
                            "name" | "schedule" | "duration" => "required".to_owned(),
                            _ => shown(value),
                        };
                        defined.insert(format!("[[{key}]] {sub}"), (String::new(), default));
                    }
                }
                toml::Value::Table(table) => {
                    for (sub, value) in table {
                        defined.insert(
                            format!("[{key}] {sub}"),
                            (env_of(&format!("{key}.{sub}")), shown(value)),
                        );
                    }
                }
                _ => {
                    defined.insert(key.clone(), (env_of(key), shown(value)));
                }
            }
        }
        // Unset by default (TOML has no null), so discovered at start.
        assert!(RawConfig::default().container_engine.is_none());
        defined.insert(
            "container_engine".into(),
            (env_of("container_engine"), "discovered".into()),
        );
        for key in ["prometheus_token_file", "prometheus_ca_file"] {
            defined.insert(key.into(), (env_of(key), "unset".into()));
        }
        // `[auth.oidc]` is unset by default and `[[auth.roles]]` empty: a row per key of one.
        let oidc = toml::Value::try_from(RawOidc::default()).unwrap();
        for (sub, value) in oidc.as_table().unwrap() {
            let default = match sub.as_str() {
                "issuer" | "client_id" => "required".to_owned(),
                _ => shown(value),
            };
            defined.insert(
                format!("[auth.oidc] {sub}"),
                (env_of(&format!("auth.oidc.{sub}")), default),
            );
        }
        for key in ["client_secret_file", "session_key_file", "ca_file"] {
            defined.insert(format!("[auth.oidc] {key}"), (String::new(), "unset".into()));
        }
        for (sub, default) in [("group", "required"), ("role", "required"), ("plugins", "[]")] {
            defined.insert(format!("[[auth.roles]] {sub}"), (String::new(), default.into()));
        }
        for scope in ["webhook", "operator", "read"] {
            let key = format!("auth.{scope}_token_file");
            defined.insert(
                format!("[auth] {scope}_token_file"),
                (env_of(&key), "unset".into()),
            );
        }
        // A table per named token, none by default: a row per key of one.
        for (sub, default) in [
            ("scopes", "required"),
            ("plugins", "every plugin"),
            ("file", "unset"),
            ("env", "unset"),
        ] {
            defined.insert(
                format!("[auth.tokens.NAME] {sub}"),
                (String::new(), default.into()),
            );
        }
        assert_eq!(documented, defined, "docs/configuration.md's table vs RawConfig");
    }
}
