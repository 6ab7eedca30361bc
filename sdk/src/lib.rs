//! Write autoheal remediation plugins in plain Rust.
//!
//! A plugin is a WebAssembly component that receives one Alertmanager alert
//! plus the `[config]` table of its manifest and answers with an [`Outcome`]
//! (`Ok`: it acted, with a short summary, or it decided not to act, with
//! why) or a reason it failed (`Err`). It can reach the outside world only
//! through [`containers`] (inspect, restart, signal, exec, logs and
//! list-by-label), [`http`] (requests to allow-listed URLs, with secrets the
//! host puts in), [`prometheus`] (PromQL queries), [`state`] (a small store
//! kept across invocations) — each limited to what its manifest allows —
//! and [`log`] (lines recorded in the audit event of the invocation).
//!
//! This crate hides the WIT bindings: write a handler function and hand it to
//! [`export_plugin!`].
//!
//! ```no_run
//! use autoheal_sdk::prelude::*;
//!
//! fn handle(alert: Alert, config: Config) -> Result<Outcome, String> {
//!     if !alert.is_firing() {
//!         return Ok(Outcome::skipped("the alert is resolved"));
//!     }
//!     let name = config.require("container")?;
//!     containers::restart(name).map_err(|e| format!("restart of {name} failed: {e}"))?;
//!     log::info(&format!("restarted {name}"));
//!     Ok(Outcome::acted(format!("restarted {name}")))
//! }
//!
//! export_plugin!(handle);
//! # fn main() {}
//! ```
//!
//! Build the plugin crate (`crate-type = ["cdylib"]`) for the `wasm32-wasip2`
//! target; the resulting `.wasm` file is the component the manifest's
//! `component` key names.
//!
//! Beyond the bindings, a few pieces that container-restarting plugins share:
//! [`target`] (which container: the `container` / `container_label` config
//! keys), [`uptime`] (the `min_uptime_sec` guard against restart loops),
//! [`remedy`] (the ending: skip resolved alerts, guard, restart, log) and
//! [`testing`] (alerts, configs, a fake host and shared checks for native
//! unit tests).
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

pub mod containers;
mod host;
pub mod http;
pub mod prometheus;
pub mod remedy;
pub mod state;
pub mod target;
pub mod template;
pub mod testing;
pub mod uptime;

/// Generated bindings for the `autoheal:plugin/action` world (0.4.0). Not
/// part of the public API: use the wrappers in this crate instead.
#[doc(hidden)]
#[allow(missing_docs, clippy::all)] // generated code
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "action",
        pub_export_macro: true,
    });
}

/// What a plugin did about an alert, when it did not fail.
///
/// Say [`Outcome::Skipped`] whenever the plugin looked and decided that
/// nothing should be done (the container is healthy, started too recently,
/// the alert is resolved): the host records it as `action_skipped`, counts
/// it as neither a success nor a failure, leaves only the manifest's short
/// `cooldown_after_skip` (none by default) so that the alert is tried again
/// while it fires, and never credits it with a recovery that follows.
/// Whatever restarted something is [`Outcome::Acted`] (a handler that
/// answers `Skipped` after a restart is recorded as having acted).
///
/// A handler may also answer a `String` (or `&str`): that is `Acted`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It acted (in dry-run: would have); a short summary of what.
    Acted(String),
    /// It decided not to act; why, for people.
    Skipped(String),
}

impl Outcome {
    /// It acted: `summary` says what it did.
    pub fn acted(summary: impl Into<String>) -> Self {
        Outcome::Acted(summary.into())
    }

    /// It decided not to act: `reason` says why.
    pub fn skipped(reason: impl Into<String>) -> Self {
        Outcome::Skipped(reason.into())
    }

    /// The summary or the reason.
    pub fn text(&self) -> &str {
        match self {
            Outcome::Acted(text) | Outcome::Skipped(text) => text,
        }
    }

    /// `true` for [`Outcome::Skipped`].
    pub fn is_skip(&self) -> bool {
        matches!(self, Outcome::Skipped(_))
    }

    fn into_wit(self) -> bindings::autoheal::plugin::types::Outcome {
        use bindings::autoheal::plugin::types::Outcome as Wit;
        match self {
            Outcome::Acted(text) => Wit::Acted(text),
            Outcome::Skipped(text) => Wit::Skipped(text),
        }
    }
}

impl From<String> for Outcome {
    /// A bare summary: the plugin acted.
    fn from(summary: String) -> Self {
        Outcome::Acted(summary)
    }
}

impl From<&str> for Outcome {
    /// A bare summary: the plugin acted.
    fn from(summary: &str) -> Self {
        Outcome::Acted(summary.to_owned())
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Acted(text) => f.write_str(text),
            Outcome::Skipped(text) => write!(f, "skipped: {text}"),
        }
    }
}

/// Whether the alert is currently firing or has been resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// The alert condition holds.
    Firing,
    /// The alert condition no longer holds; Alertmanager sent a resolve
    /// notification.
    Resolved,
}

/// One alert from an Alertmanager webhook (payload version 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Firing or resolved.
    pub status: Status,
    /// The alert's labels (`alertname`, `instance`, `job`, ...).
    pub labels: BTreeMap<String, String>,
    /// The alert's annotations (`summary`, `description`, ...).
    pub annotations: BTreeMap<String, String>,
    /// When the alert started firing, RFC 3339 as Alertmanager sent it.
    pub starts_at: String,
    /// When the alert ended, RFC 3339; `None` while it is firing with no known
    /// end.
    pub ends_at: Option<String>,
    /// Alertmanager's fingerprint of the label set.
    pub fingerprint: String,
    /// Link to the expression that generated the alert.
    pub generator_url: String,
}

impl Alert {
    /// The value of label `name`, if the alert has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    /// The value of annotation `name`, if the alert has it.
    pub fn annotation(&self, name: &str) -> Option<&str> {
        self.annotations.get(name).map(String::as_str)
    }

    /// The `alertname` label.
    pub fn alertname(&self) -> Option<&str> {
        self.label("alertname")
    }

    /// `true` if the alert is firing, `false` if it is resolved.
    pub fn is_firing(&self) -> bool {
        self.status == Status::Firing
    }

    fn from_wit(alert: bindings::Alert) -> Self {
        use bindings::autoheal::plugin::types::AlertStatus;
        Alert {
            status: match alert.status {
                AlertStatus::Firing => Status::Firing,
                AlertStatus::Resolved => Status::Resolved,
            },
            labels: alert.labels.into_iter().collect(),
            annotations: alert.annotations.into_iter().collect(),
            starts_at: alert.starts_at,
            ends_at: alert.ends_at,
            fingerprint: alert.fingerprint,
            generator_url: alert.generator_url,
        }
    }
}

/// The `[config]` table of the plugin's manifest: string keys to string values.
///
/// Build one yourself (in unit tests, say) with `collect()` or `From`:
///
/// ```
/// use autoheal_sdk::Config;
///
/// let config: Config = [("container", "crm-api"), ("min_uptime_sec", "60")]
///     .into_iter()
///     .collect();
/// assert_eq!(config.require("container"), Ok("crm-api"));
/// assert_eq!(config.parse_or("min_uptime_sec", 0u64), Ok(60));
/// assert_eq!(config.parse_or("max_restarts", 3u32), Ok(3));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config(BTreeMap<String, String>);

impl Config {
    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The value of `key`, or an error naming the key if it is not set.
    ///
    /// The error reads ``config key `container` is required``, so a handler
    /// can pass it on with `?`.
    pub fn require(&self, key: &str) -> Result<&str, String> {
        self.get(key)
            .ok_or_else(|| format!("config key `{key}` is required"))
    }

    /// The value of `key` parsed as `T` (surrounding whitespace ignored), or
    /// `default` if the key is not set.
    ///
    /// A value that does not parse is an error naming the key and the value.
    pub fn parse_or<T: FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.get(key) {
            None => Ok(default),
            Some(value) => value.trim().parse().map_err(|_| {
                format!(
                    "config key `{key}` has invalid value `{value}` (expected {})",
                    short_type_name::<T>()
                )
            }),
        }
    }

    /// All keys and values, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// `std::any::type_name` without the module path (`u64`, `Duration`, ...).
fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    // Keep generics readable: only strip the path of the outermost type.
    let head = full.split('<').next().unwrap_or(full);
    match head.rfind("::") {
        Some(i) => &full[i + 2..],
        None => full,
    }
}

impl From<BTreeMap<String, String>> for Config {
    fn from(map: BTreeMap<String, String>) -> Self {
        Config(map)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Config {
    /// Later duplicates of a key replace earlier ones.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Config(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// Log lines into the audit event of the current invocation.
pub mod log {
    use crate::host;

    /// Log at level `debug`.
    pub fn debug(msg: &str) {
        host::log("debug", msg);
    }

    /// Log at level `info`.
    pub fn info(msg: &str) {
        host::log("info", msg);
    }

    /// Log at level `warn`.
    pub fn warn(msg: &str) {
        host::log("warn", msg);
    }

    /// Log at level `error`.
    pub fn error(msg: &str) {
        host::log("error", msg);
    }
}

/// Everything a plugin usually needs: `use autoheal_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::containers;
    pub use crate::export_plugin;
    pub use crate::http;
    pub use crate::log;
    pub use crate::prometheus;
    pub use crate::state;
    pub use crate::{Alert, Config, Outcome, Status};
}

/// Support code for [`export_plugin!`]. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    use crate::{Alert, Config, Outcome, bindings};

    /// Convert the WIT arguments, call the plugin's handler, and convert
    /// its answer (an [`Outcome`], or a bare summary: acted).
    pub fn handle<T: Into<Outcome>>(
        alert: bindings::Alert,
        config: Vec<(String, String)>,
        handler: fn(Alert, Config) -> Result<T, String>,
    ) -> Result<bindings::autoheal::plugin::types::Outcome, String> {
        handler(Alert::from_wit(alert), config.into_iter().collect()).map(|answer| answer.into().into_wit())
    }
}

/// Export `handler` as the plugin's entry point.
///
/// `handler` must be a function `fn(Alert, Config) -> Result<Outcome, String>`
/// (or `Result<String, String>`, whose `Ok` reads as acted): `Ok` says what
/// was done or why nothing was ([`Outcome`]), `Err` the reason the
/// remediation failed. Invoke the macro exactly once, at the top level of the
/// plugin crate.
///
/// ```no_run
/// use autoheal_sdk::prelude::*;
///
/// fn handle(_alert: Alert, _config: Config) -> Result<Outcome, String> {
///     Ok(Outcome::skipped("nothing to do"))
/// }
///
/// export_plugin!(handle);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($handler:path $(,)?) => {
        #[doc(hidden)]
        struct __AutohealPlugin;

        impl $crate::bindings::Guest for __AutohealPlugin {
            fn handle(
                alert: $crate::bindings::Alert,
                config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
            ) -> ::core::result::Result<
                $crate::bindings::autoheal::plugin::types::Outcome,
                ::std::string::String,
            > {
                $crate::__private::handle(alert, config, $handler)
            }
        }

        $crate::bindings::export!(__AutohealPlugin with_types_in $crate::bindings);
    };
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_summary_acted_and_a_skip_says_so() {
        assert_eq!(
            Outcome::from("restarted crm-api"),
            Outcome::acted("restarted crm-api")
        );
        assert_eq!(Outcome::from(String::from("done")), Outcome::Acted("done".into()));
        let skip = Outcome::skipped("crm-api is healthy");
        assert!(skip.is_skip() && !Outcome::acted("x").is_skip());
        assert_eq!(skip.text(), "crm-api is healthy");
        assert_eq!(skip.to_string(), "skipped: crm-api is healthy");
    }

    fn alert(status: Status, labels: &[(&str, &str)]) -> Alert {
        Alert {
            status,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: [("summary".to_string(), "it broke".to_string())].into(),
            starts_at: "2024-05-01T10:00:00Z".to_string(),
            ends_at: None,
            fingerprint: "abc123".to_string(),
            generator_url: "http://prometheus/graph".to_string(),
        }
    }

    #[test]
    fn alert_helpers() {
        let a = alert(
            Status::Firing,
            &[("alertname", "TcpEndpointDownFast"), ("container", "crm-api")],
        );
        assert_eq!(a.alertname(), Some("TcpEndpointDownFast"));
        assert_eq!(a.label("container"), Some("crm-api"));
        assert_eq!(a.label("missing"), None);
        assert_eq!(a.annotation("summary"), Some("it broke"));
        assert_eq!(a.annotation("description"), None);
        assert!(a.is_firing());
        assert!(!alert(Status::Resolved, &[]).is_firing());
        assert_eq!(alert(Status::Resolved, &[]).alertname(), None);
    }

    #[test]
    fn alert_from_wit() {
        use bindings::autoheal::plugin::types::{Alert as WitAlert, AlertStatus};
        let a = Alert::from_wit(WitAlert {
            status: AlertStatus::Resolved,
            labels: vec![
                ("alertname".into(), "X".into()),
                ("job".into(), "a".into()),
                ("job".into(), "b".into()),
            ],
            annotations: vec![],
            starts_at: "s".into(),
            ends_at: Some("e".into()),
            fingerprint: "f".into(),
            generator_url: "g".into(),
        });
        assert_eq!(a.status, Status::Resolved);
        assert_eq!(a.alertname(), Some("X"));
        assert_eq!(a.label("job"), Some("b"), "last duplicate wins");
        assert_eq!(a.ends_at.as_deref(), Some("e"));
        assert_eq!(a.fingerprint, "f");
        assert_eq!(a.generator_url, "g");
    }

    #[test]
    fn config_get_and_require() {
        let c: Config = [("container", "crm-api")].into_iter().collect();
        assert_eq!(c.get("container"), Some("crm-api"));
        assert_eq!(c.get("other"), None);
        assert_eq!(c.require("container"), Ok("crm-api"));
        assert_eq!(
            c.require("container_label"),
            Err("config key `container_label` is required".to_string())
        );
    }

    #[test]
    fn config_parse_or() {
        let c: Config = [("n", "42"), ("padded", " 7 "), ("bad", "sixty"), ("neg", "-1")]
            .into_iter()
            .collect();
        assert_eq!(c.parse_or("n", 0u64), Ok(42));
        assert_eq!(c.parse_or("padded", 0u64), Ok(7));
        assert_eq!(c.parse_or("missing", 60u64), Ok(60));
        assert_eq!(c.parse_or("neg", 0i32), Ok(-1));
        assert_eq!(
            c.parse_or("bad", 60u64),
            Err("config key `bad` has invalid value `sixty` (expected u64)".to_string())
        );
        let err = c.parse_or("neg", 0u64).unwrap_err();
        assert!(err.contains("`neg`") && err.contains("`-1`"), "{err}");
        assert_eq!(
            c.parse_or("n", false).unwrap_err(),
            "config key `n` has invalid value `42` (expected bool)"
        );
    }

    #[test]
    fn config_iter_is_sorted() {
        let c: Config = [("b", "2"), ("a", "1")].into_iter().collect();
        assert_eq!(c.iter().collect::<Vec<_>>(), vec![("a", "1"), ("b", "2")]);
        let from_map = Config::from(BTreeMap::from([("k".to_string(), "v".to_string())]));
        assert_eq!(from_map.iter().count(), 1);
        assert_eq!(Config::default().iter().count(), 0);
    }

    #[test]
    fn short_type_names() {
        assert_eq!(short_type_name::<u64>(), "u64");
        assert_eq!(short_type_name::<std::time::Duration>(), "Duration");
        assert_eq!(short_type_name::<String>(), "String");
    }
}
