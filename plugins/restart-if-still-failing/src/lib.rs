//! `restart-if-still-failing`: before restarting the container an alert
//! names, ask Prometheus whether it still fails. An alert reaches autoheal
//! after `for:`, Alertmanager's group wait and maybe a queue: the service
//! may have recovered in the meantime, and a restart then only hurts.
//!
//! # Config keys (the manifest's `[config]` table)
//!
//! - `container` or `container_label` (exactly one): the container, or the
//!   alert label that names it (the SDK's [`Target`]).
//! - `check` (required): the PromQL that says whether it still fails, with
//!   `${label}` placeholders filled from the alert's labels (escaped for a
//!   PromQL string), e.g. `probe_success{target="${container}"}`.
//! - `failing_below` or `failing_above` (exactly one; default
//!   `failing_below = "1"`): still failing when the newest value of some
//!   series of `check` is below (above) this number.
//! - `min_uptime_sec` (default 0): the SDK's guard against restart loops.
//!
//! # What it does
//!
//! 1. A resolved alert: nothing.
//! 2. A bad config, or a placeholder the alert has no label for: fail,
//!    before any host call.
//! 3. Ask Prometheus. A refused or failed query, or one that returns no
//!    series at all: fail (it cannot tell, and does not restart blind; the
//!    failure is seen and notified).
//! 4. Not failing any more: skip, `recovered by itself: ...`.
//! 5. Still failing: restart, unless the container started less than
//!    `min_uptime_sec` ago.

use autoheal_sdk::prelude::*;
use autoheal_sdk::target::Target;
use autoheal_sdk::template::{self, promql_string};
use autoheal_sdk::{remedy, uptime};

export_plugin!(handle);

/// When the check's value means "still failing".
#[derive(Debug, Clone, Copy, PartialEq)]
enum Failing {
    Below(f64),
    Above(f64),
}

impl Failing {
    fn from_config(config: &Config) -> Result<Self, String> {
        let number = |key: &str, text: &str| {
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("config key `{key}` has invalid value `{text}` (expected a number)"))
        };
        match (config.get("failing_below"), config.get("failing_above")) {
            (Some(_), Some(_)) => Err("set only one of `failing_below` and `failing_above`".into()),
            (Some(below), None) => Ok(Failing::Below(number("failing_below", below)?)),
            (None, Some(above)) => Ok(Failing::Above(number("failing_above", above)?)),
            (None, None) => Ok(Failing::Below(1.0)),
        }
    }

    fn holds(self, answer: &prometheus::Answer) -> bool {
        match self {
            Failing::Below(threshold) => answer.any_below(threshold),
            Failing::Above(threshold) => answer.any_above(threshold),
        }
    }

    fn describe(self) -> String {
        match self {
            Failing::Below(t) => format!("failing below {t}"),
            Failing::Above(t) => format!("failing above {t}"),
        }
    }
}

/// The plugin's config, validated.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    target: Target,
    check: String,
    failing: Failing,
    min_uptime_sec: u64,
}

impl Settings {
    fn from_config(config: &Config) -> Result<Self, String> {
        Ok(Settings {
            target: Target::from_config(config)?,
            check: config.require("check")?.to_owned(),
            failing: Failing::from_config(config)?,
            min_uptime_sec: uptime::min_uptime_sec(config)?,
        })
    }
}

/// The newest values of an answer's series, for a person: `1, 0`.
fn values(answer: &prometheus::Answer) -> String {
    let values: Vec<String> = answer
        .series
        .iter()
        .filter_map(|s| s.value())
        .map(|v| v.to_string())
        .collect();
    values.join(", ")
}

/// The plugin's entry point: act on one alert.
fn handle(alert: Alert, config: Config) -> Result<Outcome, String> {
    if let Some(answer) = remedy::skip_resolved(&alert) {
        return Ok(answer);
    }
    let settings = Settings::from_config(&config)?;
    let name = settings.target.resolve(&alert)?;
    let check = template::fill(&settings.check, &alert, promql_string)?;
    let answer = prometheus::query(&check).map_err(|e| format!("cannot check {check}: {e}"))?;
    if answer.series.is_empty() {
        return Err(format!(
            "{check} returned no series: cannot tell whether {name} still fails, so it is not restarted blind"
        ));
    }
    let failing = settings.failing;
    if !failing.holds(&answer) {
        return Ok(remedy::skip(format!(
            "recovered by itself: {check} is {} ({})",
            values(&answer),
            failing.describe()
        )));
    }
    log::info(&format!(
        "{name} still fails: {check} is {} ({})",
        values(&answer),
        failing.describe()
    ));
    remedy::restart_unless_too_young(&name, settings.min_uptime_sec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_sdk::prometheus::{Answer, QueryError, Series};
    use autoheal_sdk::testing::{
        FakeContainer, FakeHost, assert_resolved_alert_does_nothing, config, firing,
    };

    const CHECK: &str = r#"probe_success{target="crm-api"}"#;

    /// The bundled manifest's config.
    fn bundled_config() -> Config {
        config(&[
            ("container_label", "container"),
            ("check", r#"probe_success{target="${container}"}"#),
            ("failing_below", "1"),
            ("min_uptime_sec", "60"),
        ])
    }

    fn probe(value: f64) -> Answer {
        Answer {
            series: vec![Series::sample(&[("target", "crm-api")], value)],
            truncated: false,
        }
    }

    fn alert() -> Alert {
        firing(&[("alertname", "ProbeFailing"), ("container", "crm-api")])
    }

    #[test]
    fn restarts_when_prometheus_still_sees_it_failing() {
        let host = FakeHost::new()
            .with(FakeContainer::running("crm-api"))
            .allow(["crm-api"])
            .on_query(CHECK, probe(0.0))
            .install();
        assert_eq!(
            handle(alert(), bundled_config()),
            Ok(Outcome::acted("restarted crm-api"))
        );
        assert_eq!(host.restarted(), vec!["crm-api"]);
        assert_eq!(host.queries(), vec![("query", CHECK.to_string())]);
    }

    #[test]
    fn skips_when_it_recovered_by_itself() {
        let host = FakeHost::new()
            .with(FakeContainer::running("crm-api"))
            .allow(["crm-api"])
            .on_query(CHECK, probe(1.0))
            .install();
        let answer = handle(alert(), bundled_config()).unwrap();
        assert!(answer.is_skip(), "{answer:?}");
        assert!(answer.text().starts_with("recovered by itself"), "{answer:?}");
        assert!(host.restarted().is_empty());
    }

    #[test]
    fn a_threshold_above_reads_an_error_rate() {
        let check = "rate(errors[5m])";
        let config = config(&[
            ("container", "crm-api"),
            ("check", check),
            ("failing_above", "0.05"),
        ]);
        let host = FakeHost::new()
            .with(FakeContainer::running("crm-api"))
            .on_query(check, probe(0.2))
            .install();
        assert!(!handle(alert(), config).unwrap().is_skip());
        assert_eq!(host.restarted(), vec!["crm-api"]);
    }

    #[test]
    fn no_series_or_a_failed_query_fails_and_restarts_nothing() {
        let host = FakeHost::new()
            .with(FakeContainer::running("crm-api"))
            .on_query(CHECK, Answer::default())
            .install();
        let error = handle(alert(), bundled_config()).unwrap_err();
        assert!(error.contains("returned no series"), "{error}");
        drop(host);
        let host = FakeHost::new()
            .with(FakeContainer::running("crm-api"))
            .on_query_error(CHECK, QueryError::Failed("connection refused".into()))
            .install();
        let error = handle(alert(), bundled_config()).unwrap_err();
        assert!(error.contains("connection refused"), "{error}");
        assert!(host.restarted().is_empty());
    }

    #[test]
    fn the_uptime_guard_still_holds() {
        let host = FakeHost::new()
            .with(FakeContainer::running("crm-api").uptime(Some(5)))
            .on_query(CHECK, probe(0.0))
            .install();
        assert!(handle(alert(), bundled_config()).unwrap().is_skip());
        assert!(host.restarted().is_empty());
    }

    #[test]
    fn bad_configs_and_labels_fail_before_any_host_call() {
        let missing_label = firing(&[("alertname", "ProbeFailing")]);
        assert!(handle(missing_label, bundled_config()).is_err());
        let both = config(&[
            ("container", "crm-api"),
            ("check", "up"),
            ("failing_below", "1"),
            ("failing_above", "1"),
        ]);
        assert!(handle(alert(), both).unwrap_err().contains("only one"));
        let nan = config(&[("container", "crm-api"), ("check", "up"), ("failing_below", "x")]);
        assert!(handle(alert(), nan).unwrap_err().contains("failing_below"));
        assert!(
            handle(alert(), config(&[("container", "crm-api")])).is_err(),
            "no check"
        );
        assert_resolved_alert_does_nothing(handle, bundled_config());
    }
}
