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
//! plugin's: both read them with the SDK's [`Target`] and
//! [`uptime::min_uptime_sec`]. Whatever container the plugin ends up with must
//! also be listed under `[capabilities] containers` in the manifest, or the
//! host denies the calls.
//!
//! # What it does
//!
//! 1. A resolved alert: nothing.
//! 2. Inspect the container. Any failure (not found, denied, or the engine
//!    could not answer) fails the invocation: without the health status the
//!    plugin cannot tell whether a restart is called for, so it does not
//!    restart.
//! 3. Health `healthy` or `starting`: skip. No health check: skip. Started
//!    less than `min_uptime_sec` ago: skip. A skip is answered as
//!    [`Outcome::Skipped`], with why: the host records `action_skipped`, so
//!    that it is neither a success nor a failure and the alert is tried
//!    again when Alertmanager re-sends it.
//! 4. Health `unhealthy`: restart it.

use autoheal_sdk::containers::{ContainerError, ContainerInfo};
use autoheal_sdk::prelude::*;
use autoheal_sdk::target::Target;
use autoheal_sdk::{remedy, uptime};

export_plugin!(handle);

/// What to do about a container, given what the engine reports about it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    /// Its health check reports `unhealthy` and it has been up long enough.
    Restart,
    /// Leave it alone; the reason says why.
    Skip(String),
}

/// Restart only an unhealthy container that is not too young.
///
/// An unknown uptime does not block the restart: the health check has
/// already given its verdict.
fn decide(name: &str, info: &ContainerInfo, min_uptime_sec: u64) -> Decision {
    match info.health.as_deref() {
        None => return Decision::Skip(format!("{name} has no health check")),
        Some("unhealthy") => {}
        Some(other) => return Decision::Skip(format!("{name} is {other}")),
    }
    match info.uptime_seconds {
        Some(uptime) if uptime < min_uptime_sec => Decision::Skip(format!(
            "{name} is unhealthy but started {uptime}s ago (min_uptime_sec = {min_uptime_sec})"
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
fn handle(alert: Alert, config: Config) -> Result<Outcome, String> {
    if let Some(answer) = remedy::skip_resolved(&alert) {
        return Ok(answer);
    }
    let target = Target::from_config(&config)?;
    let min_uptime_sec = uptime::min_uptime_sec(&config)?;
    let name = target.resolve(&alert)?;

    let info = containers::inspect(&name).map_err(|e| inspect_failed(&name, e))?;
    match decide(&name, &info, min_uptime_sec) {
        Decision::Skip(reason) => return Ok(remedy::skip(reason)),
        Decision::Restart => {
            if info.uptime_seconds.is_none() {
                log::warn(&format!(
                    "uptime of {name} is unknown (started_at = {:?}); restarting anyway",
                    info.started_at
                ));
            }
        }
    }

    remedy::restart(
        &name,
        format!("restarted {name}: health check reported unhealthy"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_sdk::testing::{
        assert_resolved_alert_does_nothing, assert_target_config_errors_surface_before_host_calls, config,
    };

    /// A running `crm-api` that has been up for an hour, with this health.
    fn info(health: Option<&str>) -> ContainerInfo {
        ContainerInfo {
            name: "crm-api".to_string(),
            state: "running".to_string(),
            started_at: "2024-05-01T09:00:00Z".to_string(),
            uptime_seconds: Some(3600),
            restart_count: 0,
            health: health.map(str::to_string),
            labels: Default::default(),
        }
    }

    #[test]
    fn restarts_only_when_unhealthy() {
        assert_eq!(decide("crm-api", &info(Some("unhealthy")), 60), Decision::Restart);
        assert_eq!(
            decide("crm-api", &info(Some("healthy")), 60),
            Decision::Skip("crm-api is healthy".into())
        );
        assert_eq!(
            decide("crm-api", &info(Some("starting")), 60),
            Decision::Skip("crm-api is starting".into())
        );
    }

    #[test]
    fn no_health_check_is_not_a_reason_to_restart() {
        assert_eq!(
            decide("crm-api", &info(None), 60),
            Decision::Skip("crm-api has no health check".into())
        );
        // Not even when the container is otherwise a restart candidate.
        let mut stopped = info(None);
        stopped.state = "exited".into();
        stopped.uptime_seconds = None;
        assert_eq!(
            decide("crm-api", &stopped, 0),
            Decision::Skip("crm-api has no health check".into())
        );
    }

    #[test]
    fn unhealthy_but_too_young() {
        let mut young = info(Some("unhealthy"));
        young.uptime_seconds = Some(12);
        assert_eq!(
            decide("crm-api", &young, 60),
            Decision::Skip("crm-api is unhealthy but started 12s ago (min_uptime_sec = 60)".into())
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
            Decision::Skip("crm-api is healthy".into())
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
        assert_resolved_alert_does_nothing(handle, config(&[("container", "crm-api")]));
    }

    #[test]
    fn config_errors_surface_before_host_calls() {
        assert_target_config_errors_surface_before_host_calls(handle);
    }
}
