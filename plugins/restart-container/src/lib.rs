//! `restart-container`: restart a container when an alert fires.
//!
//! This is the plugin bundled with autoheal, and a good template for your own:
//! the decision logic lives in plain functions with native unit tests
//! (`cargo test -p restart-container`), and `handle` only wires them to the
//! host calls.
//!
//! # Config keys (the manifest's `[config]` table)
//!
//! Exactly one of:
//!
//! - `container`: the name of the container to restart, e.g. `"crm-api"`.
//! - `container_label`: the name of an alert label whose value is the
//!   container to restart, e.g. `"container"` or `"name"`. An alert without
//!   that label fails.
//!
//! And optionally:
//!
//! - `min_uptime_sec` (default `60`): do not restart a container that started
//!   less than this many seconds ago; it is probably still coming up, maybe
//!   from the previous restart.
//!
//! Whatever container it ends up with must also be listed under
//! `[capabilities] containers` in the manifest, or the host denies the calls.
//!
//! # What it does
//!
//! 1. A resolved alert: nothing.
//! 2. Inspect the container. Not found or denied: fail. Started less than
//!    `min_uptime_sec` ago: skip. Inspect failed in the engine: log a warning
//!    and restart anyway.
//! 3. Restart it.

use autoheal_sdk::containers::ContainerError;
use autoheal_sdk::prelude::*;

export_plugin!(handle);

/// Default for `min_uptime_sec`.
const DEFAULT_MIN_UPTIME_SEC: u64 = 60;

/// Where the name of the container to restart comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// `container = "..."`: always this container.
    Fixed(String),
    /// `container_label = "..."`: the value of this alert label.
    FromLabel(String),
}

/// The plugin's config, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    target: Target,
    min_uptime_sec: u64,
}

impl Settings {
    fn from_config(config: &Config) -> Result<Self, String> {
        let target = match (config.get("container"), config.get("container_label")) {
            (Some(_), Some(_)) => {
                return Err(
                    "config keys `container` and `container_label` are mutually exclusive; set only one"
                        .to_string(),
                );
            }
            (None, None) => {
                return Err(
                    "config needs `container` (a container name) or `container_label` (an alert label holding it)"
                        .to_string(),
                );
            }
            (Some(name), None) => Target::Fixed(non_empty("container", name)?),
            (None, Some(label)) => Target::FromLabel(non_empty("container_label", label)?),
        };
        let min_uptime_sec = config.parse_or("min_uptime_sec", DEFAULT_MIN_UPTIME_SEC)?;
        Ok(Settings {
            target,
            min_uptime_sec,
        })
    }
}

fn non_empty(key: &str, value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        Err(format!("config key `{key}` must not be empty"))
    } else {
        Ok(value.to_string())
    }
}

impl Target {
    /// The container this alert is about.
    fn container_name(&self, alert: &Alert) -> Result<String, String> {
        match self {
            Target::Fixed(name) => Ok(name.clone()),
            Target::FromLabel(label) => match alert.label(label) {
                Some(value) if !value.trim().is_empty() => Ok(value.trim().to_string()),
                _ => Err(format!(
                    "alert has no label `{label}` to take the container name from (config `container_label`)"
                )),
            },
        }
    }
}

/// `Some(summary)` if the container started too recently to be restarted.
/// An unknown uptime does not block the restart.
fn too_young(name: &str, uptime_seconds: Option<u64>, min_uptime_sec: u64) -> Option<String> {
    match uptime_seconds {
        Some(uptime) if uptime < min_uptime_sec => Some(format!(
            "skipped: {name} started {uptime}s ago (min_uptime_sec = {min_uptime_sec})"
        )),
        _ => None,
    }
}

/// The plugin's entry point: act on one alert.
fn handle(alert: Alert, config: Config) -> Result<String, String> {
    if !alert.is_firing() {
        return Ok("nothing to do: alert is resolved".to_string());
    }
    let settings = Settings::from_config(&config)?;
    let name = settings.target.container_name(&alert)?;

    match containers::inspect(&name) {
        Ok(info) => {
            if let Some(summary) = too_young(&name, info.uptime_seconds, settings.min_uptime_sec) {
                log::info(&summary);
                return Ok(summary);
            }
            if info.uptime_seconds.is_none() {
                log::warn(&format!(
                    "uptime of {name} is unknown (started_at = {:?}); restarting anyway",
                    info.started_at
                ));
            }
        }
        Err(ContainerError::NotFound(_)) => return Err(format!("container {name} not found")),
        Err(denied @ ContainerError::Denied(_)) => return Err(denied.to_string()),
        Err(ContainerError::Runtime(e)) => {
            log::warn(&format!(
                "could not check uptime of {name} ({e}); restarting anyway"
            ));
        }
    }

    match containers::restart(&name) {
        Ok(()) => {
            log::info(&format!("restarted {name}"));
            Ok(format!("restarted {name}"))
        }
        Err(e) => Err(format!("restart of {name} failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        pairs.iter().copied().collect()
    }

    fn firing(labels: &[(&str, &str)]) -> Alert {
        Alert {
            status: Status::Firing,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: Default::default(),
            starts_at: "2024-05-01T10:00:00Z".to_string(),
            ends_at: None,
            fingerprint: "0123456789abcdef".to_string(),
            generator_url: String::new(),
        }
    }

    #[test]
    fn fixed_container_with_default_uptime() {
        let s = Settings::from_config(&config(&[("container", "crm-api")])).unwrap();
        assert_eq!(
            s,
            Settings {
                target: Target::Fixed("crm-api".into()),
                min_uptime_sec: 60
            }
        );
        assert_eq!(s.target.container_name(&firing(&[])), Ok("crm-api".into()));
    }

    #[test]
    fn container_from_label() {
        let s = Settings::from_config(&config(&[("container_label", "name"), ("min_uptime_sec", "300")]))
            .unwrap();
        assert_eq!(s.min_uptime_sec, 300);
        assert_eq!(
            s.target.container_name(&firing(&[("name", "billing")])),
            Ok("billing".into())
        );
        let err = s
            .target
            .container_name(&firing(&[("alertname", "X")]))
            .unwrap_err();
        assert!(err.contains("`name`"), "{err}");
        let err = s.target.container_name(&firing(&[("name", "")])).unwrap_err();
        assert!(err.contains("`name`"), "{err}");
    }

    #[test]
    fn exactly_one_target_key() {
        let both =
            Settings::from_config(&config(&[("container", "a"), ("container_label", "b")])).unwrap_err();
        assert!(both.contains("mutually exclusive"), "{both}");
        let neither = Settings::from_config(&config(&[("min_uptime_sec", "5")])).unwrap_err();
        assert!(
            neither.contains("`container`") && neither.contains("`container_label`"),
            "{neither}"
        );
        let empty = Settings::from_config(&config(&[("container", " ")])).unwrap_err();
        assert_eq!(empty, "config key `container` must not be empty");
    }

    #[test]
    fn bad_min_uptime() {
        let err =
            Settings::from_config(&config(&[("container", "a"), ("min_uptime_sec", "1m")])).unwrap_err();
        assert!(err.contains("min_uptime_sec") && err.contains("1m"), "{err}");
    }

    #[test]
    fn uptime_check() {
        assert_eq!(
            too_young("crm-api", Some(12), 60),
            Some("skipped: crm-api started 12s ago (min_uptime_sec = 60)".into())
        );
        assert_eq!(too_young("crm-api", Some(60), 60), None);
        assert_eq!(too_young("crm-api", Some(3600), 60), None);
        assert_eq!(too_young("crm-api", None, 60), None);
        assert_eq!(too_young("crm-api", Some(0), 0), None);
    }

    #[test]
    fn resolved_alert_does_nothing() {
        // Returns before any host call, so this runs natively.
        let mut alert = firing(&[]);
        alert.status = Status::Resolved;
        assert_eq!(
            handle(alert, config(&[("container", "crm-api")])),
            Ok("nothing to do: alert is resolved".into())
        );
    }

    #[test]
    fn config_errors_surface_before_host_calls() {
        let err = handle(firing(&[]), config(&[])).unwrap_err();
        assert!(err.contains("container"), "{err}");
        let err = handle(firing(&[]), config(&[("container_label", "name")])).unwrap_err();
        assert!(err.contains("`name`"), "{err}");
    }
}
