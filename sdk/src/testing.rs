//! Alerts, configs and a fake host for native unit tests of a plugin.
//!
//! A plugin's decisions are plain functions, so `cargo test -p <crate>` can
//! run them natively; these build their inputs, and [`FakeHost`] answers the
//! host calls, so `handle` itself runs natively too.
//!
//! ```
//! use autoheal_sdk::testing::{config, firing};
//!
//! let alert = firing(&[("alertname", "ContainerDown"), ("container", "crm-api")]);
//! assert!(alert.is_firing());
//! assert_eq!(alert.label("container"), Some("crm-api"));
//! assert_eq!(config(&[("container", "crm-api")]).get("container"), Some("crm-api"));
//! ```
//!
//! Host calls ([`containers`](crate::containers), [`log`](crate::log)) go
//! natively to the [`FakeHost`] the test installed; without one they panic,
//! saying so (which also proves that a refusal came before any host call).

use crate::{Alert, Config, Status};

pub(crate) mod fake;

pub use fake::{Call, FakeContainer, FakeHost, Installed};

/// A firing alert with these labels, no annotations, and fixed values for the
/// rest (`starts_at` `2024-05-01T10:00:00Z`, fingerprint `0123456789abcdef`,
/// empty generator URL). Set `status` to [`Status::Resolved`] for a resolved
/// one.
pub fn firing(labels: &[(&str, &str)]) -> Alert {
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

/// A `[config]` table with these keys and values.
pub fn config(pairs: &[(&str, &str)]) -> Config {
    pairs.iter().copied().collect()
}

/// A plugin's entry point, as handed to [`export_plugin!`](crate::export_plugin).
pub type Handler = fn(Alert, Config) -> Result<crate::Outcome, String>;

/// Asserts that `handle` skips a resolved alert, saying
/// [`remedy::RESOLVED`](crate::remedy::RESOLVED), under `config`, before
/// any host call (so natively).
pub fn assert_resolved_alert_does_nothing(handle: Handler, config: Config) {
    let mut alert = firing(&[]);
    alert.status = Status::Resolved;
    assert_eq!(
        handle(alert, config),
        Ok(crate::Outcome::Skipped(crate::remedy::RESOLVED.into()))
    );
}

/// Asserts that a plugin configured through [`Target`](crate::target::Target)
/// and [`min_uptime_sec`](crate::uptime::min_uptime_sec) rejects a bad config
/// before any host call: no target, a `container_label` the alert lacks, and
/// a bad `min_uptime_sec` (the whole config is checked before the alert).
pub fn assert_target_config_errors_surface_before_host_calls(handle: Handler) {
    let err = handle(firing(&[]), config(&[])).unwrap_err();
    assert!(err.contains("container"), "{err}");
    let err = handle(firing(&[]), config(&[("container_label", "name")])).unwrap_err();
    assert!(err.contains("`name`"), "{err}");
    let err = handle(
        firing(&[]),
        config(&[("container_label", "name"), ("min_uptime_sec", "1m")]),
    )
    .unwrap_err();
    assert!(err.contains("min_uptime_sec") && err.contains("1m"), "{err}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firing_alert() {
        let a = firing(&[("alertname", "X"), ("container", "crm-api")]);
        assert_eq!(a.status, Status::Firing);
        assert_eq!(a.alertname(), Some("X"));
        assert_eq!(a.label("container"), Some("crm-api"));
        assert!(a.annotations.is_empty());
        assert_eq!(a.starts_at, "2024-05-01T10:00:00Z");
        assert_eq!(a.ends_at, None);
        assert_eq!(a.fingerprint, "0123456789abcdef");
        assert_eq!(a.generator_url, "");
        assert!(firing(&[]).labels.is_empty());
    }

    #[test]
    fn config_pairs() {
        let c = config(&[("a", "1"), ("b", "2"), ("a", "3")]);
        assert_eq!(c.iter().collect::<Vec<_>>(), vec![("a", "3"), ("b", "2")]);
        assert_eq!(config(&[]), Config::default());
    }
}
