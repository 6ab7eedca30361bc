//! Host configuration: defaults, then a TOML file, then environment variables,
//! then command-line flags. Parsing and validation are separate steps, and
//! every error names the key (and the file or variable) it came from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use autoheal_core::audit::FsyncPolicy;
use autoheal_core::mode::{DryRunReason, ExecutionMode};
use autoheal_core::util::parse_duration;

use autoheal_sandbox::SandboxConfig;
use autoheal_sandbox::manifest::ManifestBounds;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
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
    /// Directory of plugin manifests (`NAME.toml`) and components.
    pub plugins_dir: PathBuf,
    /// Where precompiled plugin artifacts are cached between starts.
    pub cache_dir: PathBuf,
    /// Reload plugins when the plugins directory changes. Where watching
    /// does not work (some network filesystems), `POST /plugins/reload`.
    pub watch_plugins: bool,
    /// Cooldown for alerts that have no more specific one.
    pub default_cooldown_sec: u64,
    /// Per-alertname cooldowns, overriding the default (a plugin manifest's
    /// own cooldown overrides both).
    pub cooldowns: BTreeMap<String, u64>,
    /// Alertmanager, for silences ("ack") and the firing alerts of `/vision`.
    pub alertmanager_url: String,
    /// Prometheus, whose recording rules `/vision` and `autoheal vision` read.
    pub prometheus_url: String,
    /// How operators reach this host (used in links).
    pub public_url: String,
    /// Largest webhook body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Concurrent `GET /events` subscribers; beyond it the answer is 503.
    pub sse_max_subscribers: usize,
    /// The container engine: `unix:///path.sock`, `tcp://host:port`, or
    /// `none`. Unset: `DOCKER_HOST`, else Docker's socket, else Podman's.
    pub container_engine: Option<String>,
    /// Deadline of each engine call (a restart gets the stop timeout on top).
    pub engine_timeout_sec: u64,
    pub circuit_breaker: BreakerConfig,
    pub sandbox: SandboxConfig,
}

/// The restart circuit breaker: real restarts of one container per window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    pub max_restarts: u32,
    /// A duration such as `1h` or `30m`.
    pub window: String,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            max_restarts: 3,
            window: "1h".into(),
        }
    }
}

impl BreakerConfig {
    pub fn window(&self) -> Result<std::time::Duration, String> {
        parse_duration(&self.window)
    }
}

impl Config {
    /// Real only when enabled and not in dry-run; otherwise why not.
    pub fn mode(&self) -> (ExecutionMode, Option<DryRunReason>) {
        if !self.enabled {
            (ExecutionMode::DryRun, Some(DryRunReason::Disabled))
        } else if self.dry_run {
            (ExecutionMode::DryRun, Some(DryRunReason::DryRun))
        } else {
            (ExecutionMode::Real, None)
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9009)),
            enabled: false,
            dry_run: true,
            audit_path: PathBuf::from("data/audit.jsonl"),
            audit_fsync: FsyncPolicy::EveryBatch,
            plugins_dir: PathBuf::from("plugins.d"),
            cache_dir: PathBuf::from("data/cache"),
            watch_plugins: true,
            default_cooldown_sec: 600,
            cooldowns: BTreeMap::new(),
            alertmanager_url: "http://127.0.0.1:9093".into(),
            prometheus_url: "http://127.0.0.1:9090".into(),
            public_url: "http://127.0.0.1:9009".into(),
            max_body_bytes: 1024 * 1024,
            sse_max_subscribers: 2048,
            container_engine: None,
            engine_timeout_sec: 10,
            circuit_breaker: BreakerConfig::default(),
            sandbox: SandboxConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: &'static str, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
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
    ("AUTOHEAL_AUDIT_FSYNC", "audit_fsync"),
    ("AUTOHEAL_CONTAINER_ENGINE", "container_engine"),
    ("PROMETHEUS_URL", "prometheus_url"),
];

impl Config {
    /// Reads a TOML config file (unknown keys are errors).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// Applies the variables of [`ENV_VARS`] found by `lookup`.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for &(var, key) in ENV_VARS {
            if let Some(value) = lookup(var) {
                self.set(key, &value)
                    .map_err(|message| ConfigError::Env { var, message })?;
            }
        }
        Ok(())
    }

    /// Sets one top-level key from its text form (as in an environment variable).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let invalid = |what: &str| format!("invalid value {value:?} for `{key}`: expected {what}");
        match key {
            "enabled" => self.enabled = parse_bool(value).ok_or_else(|| invalid("true or false"))?,
            "dry_run" => self.dry_run = parse_bool(value).ok_or_else(|| invalid("true or false"))?,
            "audit_path" => self.audit_path = value.into(),
            "plugins_dir" => self.plugins_dir = value.into(),
            "cache_dir" => self.cache_dir = value.into(),
            "default_cooldown_sec" => {
                self.default_cooldown_sec = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("a whole number of seconds"))?
            }
            "alertmanager_url" => self.alertmanager_url = value.into(),
            "prometheus_url" => self.prometheus_url = value.into(),
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
            _ => return Err(format!("unknown config key `{key}`")),
        }
        Ok(())
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.to_owned(),
            message: message.to_owned(),
        };
        for (key, url) in [
            ("alertmanager_url", &self.alertmanager_url),
            ("prometheus_url", &self.prometheus_url),
            ("public_url", &self.public_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(key, &format!("{url:?} is not an http(s) URL")));
            }
        }
        if self.max_body_bytes == 0 {
            return Err(invalid("max_body_bytes", "must be greater than 0"));
        }
        if self.audit_path.as_os_str().is_empty() {
            return Err(invalid("audit_path", "must not be empty"));
        }
        if !(1..=4096).contains(&self.sandbox.max_memory_mb) {
            return Err(invalid("sandbox.max_memory_mb", "must be between 1 and 4096"));
        }
        if self.circuit_breaker.max_restarts == 0 {
            return Err(invalid("circuit_breaker.max_restarts", "must be at least 1"));
        }
        if let Err(e) = self.circuit_breaker.window() {
            return Err(invalid("circuit_breaker.window", &e));
        }
        if !(1..=600).contains(&self.engine_timeout_sec) {
            return Err(invalid("engine_timeout_sec", "must be between 1 and 600"));
        }
        if let Some(engine) = self.container_engine.as_deref().filter(|e| *e != "none")
            && let Err(e) = autoheal_containers::EngineAddress::parse(engine)
        {
            return Err(invalid("container_engine", &e));
        }
        if !(1..=1000).contains(&self.sandbox.max_concurrent) {
            return Err(invalid("sandbox.max_concurrent", "must be between 1 and 1000"));
        }
        Ok(())
    }

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
        let config = Config::default();
        assert!(!config.enabled);
        assert!(config.dry_run);
        assert!(!config.executes_for_real());
        assert_eq!(config.default_cooldown_sec, 600);
        assert_eq!(config.listen.to_string(), "127.0.0.1:9009");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("enabled = true\ndry_runn = false\n").unwrap_err();
        assert!(err.contains("dry_runn"), "{err}");
        let err = Config::from_toml("[sandbox]\nmax_mem = 3\n").unwrap_err();
        assert!(err.contains("max_mem"), "{err}");
    }

    #[test]
    fn env_overrides_file_and_errors_name_the_variable() {
        let mut config = Config::from_toml("enabled = false\n[cooldowns]\nX = 5\n").unwrap();
        config
            .apply_env(|var| match var {
                "AUTOHEAL_ENABLED" => Some("true".into()),
                "AUTOHEAL_DRY_RUN" => Some("0".into()),
                "AUTOHEAL_DEFAULT_COOLDOWN_SEC" => Some("30".into()),
                _ => None,
            })
            .unwrap();
        assert!(config.executes_for_real());
        assert_eq!(config.cooldown_for("X"), 5);
        assert_eq!(config.cooldown_for("Y"), 30);

        let err = config
            .apply_env(|var| (var == "AUTOHEAL_DEFAULT_COOLDOWN_SEC").then(|| "ten".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("AUTOHEAL_DEFAULT_COOLDOWN_SEC"), "{err}");
        assert!(err.contains("ten"), "{err}");
    }

    #[test]
    fn validate_names_the_key() {
        let config = Config {
            alertmanager_url: "alertmanager:9093".into(),
            ..Config::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("alertmanager_url"), "{err}");
    }
}
