//! `reload-config`: send a signal (`HUP` by default) to the container an
//! alert names, so that it re-reads its configuration without a restart:
//! busybox httpd, nginx and haproxy all reload on `SIGHUP`.
//!
//! # Config keys (the manifest's `[config]` table)
//!
//! - `container` or `container_label` (exactly one): the container, or the
//!   alert label that names it (the SDK's [`Target`]).
//! - `signal` (default `"HUP"`): the signal to send, a name such as `HUP` or
//!   `USR1` (`SIGHUP` is the same). The manifest's `[capabilities] signals`
//!   must list it, or the host denies it.
//!
//! # What it does
//!
//! 1. A resolved alert: nothing.
//! 2. A bad config (no target, a signal that is not a name): fail, before
//!    any host call.
//! 3. Inspect the container. Not found, denied, or the engine cannot say:
//!    fail. Not running: skip (a stopped process has no configuration to
//!    reload, and a signal would not start it).
//! 4. Send the signal: `sent HUP to edge-httpd`.

use autoheal_sdk::prelude::*;
use autoheal_sdk::remedy;
use autoheal_sdk::target::Target;

export_plugin!(handle);

/// Default for `signal`: "re-read your configuration" by convention.
const DEFAULT_SIGNAL: &str = "HUP";

/// The plugin's config, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    target: Target,
    signal: String,
}

impl Settings {
    fn from_config(config: &Config) -> Result<Self, String> {
        let target = Target::from_config(config)?;
        let signal = signal_name(config.get("signal").unwrap_or(DEFAULT_SIGNAL))?;
        Ok(Settings { target, signal })
    }
}

/// `"HUP"`, `"SIGHUP"` and `" hup "` are `HUP`; anything but letters and
/// digits is a config error (the host would deny it anyway, less clearly).
fn signal_name(text: &str) -> Result<String, String> {
    let upper = text.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "config key `signal` has invalid value `{text}` (expected a signal name such as HUP or USR1)"
        ));
    }
    Ok(name.to_owned())
}

/// Why not to signal a container in this state; `None` to go ahead.
fn not_reloadable(info: &containers::ContainerInfo) -> Option<String> {
    (!info.is_running()).then(|| {
        format!(
            "{} is {}, not running: there is no process to reload",
            info.name, info.state
        )
    })
}

/// The plugin's entry point: act on one alert.
fn handle(alert: Alert, config: Config) -> Result<Outcome, String> {
    if let Some(answer) = remedy::skip_resolved(&alert) {
        return Ok(answer);
    }
    let settings = Settings::from_config(&config)?;
    let name = settings.target.resolve(&alert)?;
    let info = containers::inspect(&name).map_err(|e| format!("cannot inspect {name}: {e}"))?;
    if let Some(reason) = not_reloadable(&info) {
        return Ok(remedy::skip(reason));
    }
    let signal = &settings.signal;
    containers::signal(&name, signal).map_err(|e| format!("sending {signal} to {name} failed: {e}"))?;
    let summary = format!("sent {signal} to {name}");
    log::info(&summary);
    Ok(Outcome::acted(summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_sdk::testing::{
        FakeContainer, FakeHost, assert_resolved_alert_does_nothing, config, firing,
    };

    /// The bundled manifest's config and allow-lists.
    fn bundled_host(container: FakeContainer) -> FakeHost {
        FakeHost::new()
            .with(container)
            .allow(["edge-httpd", "edge-nginx"])
            .allow_signals(["HUP"])
    }

    fn bundled_config() -> Config {
        config(&[("container_label", "container"), ("signal", "HUP")])
    }

    #[test]
    fn sends_hup_to_the_container_the_alert_names() {
        let host = bundled_host(FakeContainer::running("edge-httpd")).install();
        let answer = handle(firing(&[("container", "edge-httpd")]), bundled_config());
        assert_eq!(answer, Ok(Outcome::acted("sent HUP to edge-httpd")));
        assert_eq!(
            host.signalled(),
            vec![("edge-httpd".to_string(), "HUP".to_string())]
        );
        assert!(host.restarted().is_empty());
        assert_eq!(host.logged("info"), vec!["sent HUP to edge-httpd"]);
    }

    #[test]
    fn a_stopped_container_is_skipped_without_a_signal() {
        let host = bundled_host(FakeContainer::running("edge-httpd").state("exited")).install();
        let answer = handle(firing(&[("container", "edge-httpd")]), bundled_config()).unwrap();
        assert_eq!(
            answer,
            Outcome::skipped("edge-httpd is exited, not running: there is no process to reload")
        );
        assert!(host.signalled().is_empty());
    }

    #[test]
    fn a_container_or_signal_the_manifest_does_not_allow_fails() {
        let host = bundled_host(FakeContainer::running("postgres")).install();
        let err = handle(firing(&[("container", "postgres")]), bundled_config()).unwrap_err();
        assert!(err.starts_with("cannot inspect postgres: denied:"), "{err}");
        drop(host);

        let host = bundled_host(FakeContainer::running("edge-httpd")).install();
        let cfg = config(&[("container", "edge-httpd"), ("signal", "SIGKILL")]);
        let err = handle(firing(&[]), cfg).unwrap_err();
        assert_eq!(
            err,
            "sending KILL to edge-httpd failed: denied: signal KILL is not in the manifest's signals"
        );
        assert!(host.signalled().is_empty());
    }

    #[test]
    fn a_missing_container_fails() {
        let _host = FakeHost::new().install();
        let err = handle(firing(&[("container", "gone")]), bundled_config()).unwrap_err();
        assert_eq!(err, "cannot inspect gone: not found: gone");
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name("HUP"), Ok("HUP".into()));
        assert_eq!(signal_name(" sighup "), Ok("HUP".into()));
        assert_eq!(signal_name("USR1"), Ok("USR1".into()));
        for bad in ["", "SIG", "HUP;KILL", "-9", "H UP"] {
            let err = signal_name(bad).unwrap_err();
            assert!(err.contains("`signal`"), "{bad:?}: {err}");
        }
        assert_eq!(
            Settings::from_config(&config(&[("container", "a")])).map(|s| s.signal),
            Ok("HUP".into())
        );
    }

    #[test]
    fn config_errors_and_resolved_alerts_need_no_host() {
        assert_resolved_alert_does_nothing(handle, bundled_config());
        // Natively, a host call without a FakeHost panics: these errors came first.
        let err = handle(firing(&[]), config(&[])).unwrap_err();
        assert!(err.contains("`container`"), "{err}");
        let err = handle(firing(&[]), bundled_config()).unwrap_err();
        assert!(err.contains("no label `container`"), "{err}");
        let err = handle(firing(&[]), config(&[("container", "a"), ("signal", "9;")])).unwrap_err();
        assert!(err.contains("`signal`"), "{err}");
    }
}
