//! `restart-container`: restart a container when an alert fires.
//!
//! This is the plugin bundled with autoheal, and a good template for your own.
//! The decisions every restarting plugin makes come from the SDK, which tests
//! them natively: [`Target`] reads `container` / `container_label` and names
//! the container an alert is about, and [`uptime`] reads `min_uptime_sec` and
//! inspects the container before the restart. `handle` only wires them to the
//! host calls. Put decisions of your own in plain functions too, so that
//! `cargo test -p <crate>` runs them natively (see `restart-unhealthy` and
//! `restart-by-label`).
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

use autoheal_sdk::prelude::*;
use autoheal_sdk::target::Target;
use autoheal_sdk::{remedy, uptime};

export_plugin!(handle);

/// The plugin's entry point: act on one alert.
fn handle(alert: Alert, config: Config) -> Result<Outcome, String> {
    if let Some(answer) = remedy::skip_resolved(&alert) {
        return Ok(answer);
    }
    let target = Target::from_config(&config)?;
    let min_uptime_sec = uptime::min_uptime_sec(&config)?;
    let name = target.resolve(&alert)?;
    remedy::restart_unless_too_young(&name, min_uptime_sec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_sdk::testing::{
        assert_resolved_alert_does_nothing, assert_target_config_errors_surface_before_host_calls, config,
    };

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
