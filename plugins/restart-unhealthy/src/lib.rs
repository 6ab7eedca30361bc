//! `restart-unhealthy`: restart a container when, and only when, its health
//! check says it is unhealthy.
//!
//! An alert such as `ContainerUnhealthy` may be stale by the time it arrives,
//! or may fire for a container whose health check is not what the alert rule
//! assumed. This plugin asks the engine first and restarts only a container
//! whose health check currently reports `unhealthy`. A container that is
//! `healthy` or still `starting` is left alone, and so is one with no health
//! check at all: without a verdict from a health check there is no reason to
//! restart it, so the plugin does not restart blindly.
//!
//! # Config keys (the manifest's `[config]` table)
//!
//! Exactly one of:
//!
//! - `container`: the name of the container to watch, e.g. `"crm-api"`.
//! - `container_label`: the name of an alert label whose value is the
//!   container, e.g. `"container"` or `"name"`. An alert without that label
//!   fails.
//!
//! And optionally:
//!
//! - `min_uptime_sec` (default `60`): do not restart a container that started
//!   less than this many seconds ago, even if it already reports unhealthy;
//!   give it time to settle after the previous restart.
//!
//! These are the same keys, with the same meaning, as the `restart-container`
//! plugin's. Whatever container the plugin ends up with must also be listed
//! under `[capabilities] containers` in the manifest, or the host denies the
//! calls.
//!
//! # What it does
//!
//! 1. A resolved alert: nothing.
//! 2. Inspect the container. Any failure (not found, denied, or the engine
//!    could not answer) fails the invocation: without the health status the
//!    plugin cannot tell whether a restart is called for, so it does not
//!    restart.
//! 3. Health `healthy` or `starting`: skip. No health check: skip. Started
//!    less than `min_uptime_sec` ago: skip.
//! 4. Health `unhealthy`: restart it.

use autoheal_sdk::containers::{ContainerError, ContainerInfo};
use autoheal_sdk::prelude::*;

export_plugin!(handle);

/// Default for `min_uptime_sec`.
const DEFAULT_MIN_UPTIME_SEC: u64 = 60;

/// Where the name of the container comes from.
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

/// What to do about a container, given what the engine reports about it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    /// Its health check reports `unhealthy` and it has been up long enough.
    Restart,
    /// Leave it alone; the summary says why.
    Skip(String),
}

/// Restart only an unhealthy container that is not too young.
///
/// An unknown uptime does not block the restart: the health check has
/// already given its verdict.
fn decide(name: &str, info: &ContainerInfo, min_uptime_sec: u64) -> Decision {
    match info.health.as_deref() {
        None => return Decision::Skip(format!("skipped: {name} has no health check")),
        Some("unhealthy") => {}
        Some(other) => return Decision::Skip(format!("skipped: {name} is {other}")),
    }
    match info.uptime_seconds {
        Some(uptime) if uptime < min_uptime_sec => Decision::Skip(format!(
            "skipped: {name} is unhealthy but started {uptime}s ago (min_uptime_sec = {min_uptime_sec})"
        )),
        _ => Decision::Restart,
    }
}

/// Why an inspect failure stops the plugin.
fn inspect_failed(name: &str, error: ContainerError) -> String {
    match error {
        ContainerError::NotFound(_) => format!("container {name} not found"),
        denied @ ContainerError::Denied(_) => denied.to_string(),
        ContainerError::Runtime(e) => {
            format!("could not inspect {name} ({e}); not restarting without knowing its health")
        }
    }
}

/// The plugin's entry point: act on one alert.
fn handle(alert: Alert, config: Config) -> Result<String, String> {
    if !alert.is_firing() {
        return Ok("nothing to do: alert is resolved".to_string());
    }
    let settings = Settings::from_config(&config)?;
    let name = settings.target.container_name(&alert)?;

    let info = containers::inspect(&name).map_err(|e| inspect_failed(&name, e))?;
    match decide(&name, &info, settings.min_uptime_sec) {
        Decision::Skip(summary) => {
            log::info(&summary);
            return Ok(summary);
        }
        Decision::Restart => {
            if info.uptime_seconds.is_none() {
                log::warn(&format!(
                    "uptime of {name} is unknown (started_at = {:?}); restarting anyway",
                    info.started_at
                ));
            }
        }
    }

    match containers::restart(&name) {
        Ok(()) => {
            let summary = format!("restarted {name}: health check reported unhealthy");
            log::info(&summary);
            Ok(summary)
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

    /// A running `crm-api` that has been up for an hour, with this health.
    fn info(health: Option<&str>) -> ContainerInfo {
        ContainerInfo {
            name: "crm-api".to_string(),
            state: "running".to_string(),
            started_at: "2024-05-01T09:00:00Z".to_string(),
            uptime_seconds: Some(3600),
            restart_count: 0,
            health: health.map(str::to_string),
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
            s.target.container_name(&firing(&[("name", " billing ")])),
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
    fn restarts_only_when_unhealthy() {
        assert_eq!(decide("crm-api", &info(Some("unhealthy")), 60), Decision::Restart);
        assert_eq!(
            decide("crm-api", &info(Some("healthy")), 60),
            Decision::Skip("skipped: crm-api is healthy".into())
        );
        assert_eq!(
            decide("crm-api", &info(Some("starting")), 60),
            Decision::Skip("skipped: crm-api is starting".into())
        );
    }

    #[test]
    fn no_health_check_is_not_a_reason_to_restart() {
        assert_eq!(
            decide("crm-api", &info(None), 60),
            Decision::Skip("skipped: crm-api has no health check".into())
        );
        // Not even when the container is otherwise a restart candidate.
        let mut stopped = info(None);
        stopped.state = "exited".into();
        stopped.uptime_seconds = None;
        assert_eq!(
            decide("crm-api", &stopped, 0),
            Decision::Skip("skipped: crm-api has no health check".into())
        );
    }

    #[test]
    fn unhealthy_but_too_young() {
        let mut young = info(Some("unhealthy"));
        young.uptime_seconds = Some(12);
        assert_eq!(
            decide("crm-api", &young, 60),
            Decision::Skip("skipped: crm-api is unhealthy but started 12s ago (min_uptime_sec = 60)".into())
        );
        young.uptime_seconds = Some(60);
        assert_eq!(decide("crm-api", &young, 60), Decision::Restart);
        young.uptime_seconds = Some(0);
        assert_eq!(decide("crm-api", &young, 0), Decision::Restart);
    }

    #[test]
    fn unknown_uptime_does_not_block_an_unhealthy_restart() {
        let mut unknown = info(Some("unhealthy"));
        unknown.uptime_seconds = None;
        assert_eq!(decide("crm-api", &unknown, 60), Decision::Restart);
    }

    #[test]
    fn health_is_checked_before_uptime() {
        // A young healthy container is reported as healthy, not as young.
        let mut young = info(Some("healthy"));
        young.uptime_seconds = Some(1);
        assert_eq!(
            decide("crm-api", &young, 60),
            Decision::Skip("skipped: crm-api is healthy".into())
        );
    }

    #[test]
    fn every_inspect_failure_is_an_error() {
        assert_eq!(
            inspect_failed("crm-api", ContainerError::NotFound("no such container".into())),
            "container crm-api not found"
        );
        assert_eq!(
            inspect_failed("crm-api", ContainerError::Denied("not in manifest".into())),
            "denied: not in manifest"
        );
        let err = inspect_failed("crm-api", ContainerError::Runtime("socket closed".into()));
        assert!(err.contains("socket closed"), "{err}");
        assert!(err.contains("not restarting"), "{err}");
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
