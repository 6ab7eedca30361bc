//! `restart-service`: restart every container of a compose service, one at a
//! time, found by label rather than by name: a `ServiceDegraded` alert with
//! `service="crm-api"` restarts `crm-api-1`, `crm-api-2`, ... (whatever
//! compose called them), as `list_by_label("com.docker.compose.service=crm-api")`
//! finds them.
//!
//! # Config keys (the manifest's `[config]` table)
//!
//! - `service_label` (default `"service"`): the alert label naming the
//!   service.
//! - `selector_key` (default `"com.docker.compose.service"`): the container
//!   label that carries the service's name. The manifest's `[capabilities]
//!   containers` must list `label:KEY=SERVICE` for each service, or the host
//!   denies the listing.
//! - `min_uptime_sec` (default `60`): leave alone a container that started
//!   less than this ago (the SDK's uptime guard).
//!
//! # What it does
//!
//! 1. A resolved alert: nothing.
//! 2. A bad config, or an alert without the service label: fail, before any
//!    host call.
//! 3. List the service's containers. Denied or failed: fail. None: skip.
//! 4. For each, in name order: inspect it (too young: leave it alone), then
//!    restart it, before the next one, so the others keep serving.
//! 5. Restarted any: acted, naming which (and which were left alone). Left
//!    all alone: skip, saying why. A restart that fails stops there and
//!    fails, naming the ones already restarted.

use autoheal_sdk::prelude::*;
use autoheal_sdk::{remedy, uptime};

export_plugin!(handle);

/// Default for `service_label`.
const DEFAULT_SERVICE_LABEL: &str = "service";
/// Default for `selector_key`: the label `docker compose` (and podman
/// compose) sets on a service's containers.
const DEFAULT_SELECTOR_KEY: &str = "com.docker.compose.service";

/// The plugin's config, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    service_label: String,
    selector_key: String,
    min_uptime_sec: u64,
}

impl Settings {
    fn from_config(config: &Config) -> Result<Self, String> {
        let word = |key: &str, default: &str| -> Result<String, String> {
            let value = config.get(key).unwrap_or(default).trim();
            if value.is_empty() || value.contains(['=', ',']) || value.contains(char::is_whitespace) {
                return Err(format!(
                    "config key `{key}` has invalid value `{value}` (expected a label name)"
                ));
            }
            Ok(value.to_owned())
        };
        Ok(Settings {
            service_label: word("service_label", DEFAULT_SERVICE_LABEL)?,
            selector_key: word("selector_key", DEFAULT_SELECTOR_KEY)?,
            min_uptime_sec: uptime::min_uptime_sec(config)?,
        })
    }

    /// The selector of the alert's service: `KEY=SERVICE`.
    fn selector(&self, alert: &Alert) -> Result<String, String> {
        let label = &self.service_label;
        match alert.label(label).map(str::trim) {
            Some(service) if !service.is_empty() => Ok(format!("{}={service}", self.selector_key)),
            _ => Err(format!(
                "alert has no label `{label}` to take the service from (config `service_label`)"
            )),
        }
    }
}

/// The answer once every container was restarted or left alone.
fn summary(selector: &str, restarted: &[String], left: &[String]) -> Outcome {
    if restarted.is_empty() {
        return Outcome::skipped(format!("{selector}: left all alone: {}", left.join("; ")));
    }
    let mut text = format!("restarted {} of {selector}", restarted.join(", "));
    if !left.is_empty() {
        text.push_str(&format!("; left alone: {}", left.join("; ")));
    }
    Outcome::acted(text)
}

/// The plugin's entry point: act on one alert.
fn handle(alert: Alert, config: Config) -> Result<Outcome, String> {
    if let Some(answer) = remedy::skip_resolved(&alert) {
        return Ok(answer);
    }
    let settings = Settings::from_config(&config)?;
    let selector = settings.selector(&alert)?;
    let mut names =
        containers::list_by_label(&selector).map_err(|e| format!("cannot list {selector}: {e}"))?;
    if names.is_empty() {
        return Ok(remedy::skip(format!("no container carries {selector}")));
    }
    names.sort();
    let (mut restarted, mut left) = (Vec::new(), Vec::new());
    for name in names {
        if let Some(reason) = uptime::check(&name, settings.min_uptime_sec)? {
            log::info(&format!("left alone: {reason}"));
            left.push(reason);
            continue;
        }
        if let Err(e) = containers::restart(&name) {
            let done = if restarted.is_empty() {
                "none restarted before it".to_owned()
            } else {
                format!("already restarted: {}", restarted.join(", "))
            };
            return Err(format!("restart of {name} failed: {e} ({done})"));
        }
        log::info(&format!("restarted {name} ({selector})"));
        restarted.push(name);
    }
    Ok(summary(&selector, &restarted, &left))
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_sdk::testing::{
        FakeContainer, FakeHost, assert_resolved_alert_does_nothing, config, firing,
    };

    const KEY: &str = "com.docker.compose.service";

    fn replica(name: &str, service: &str) -> FakeContainer {
        FakeContainer::running(name).label(KEY, service)
    }

    /// The bundled manifest's allow-list, with two crm-api replicas and a
    /// worker.
    fn bundled_host() -> FakeHost {
        FakeHost::new()
            .with(replica("crm-api-2", "crm-api"))
            .with(replica("crm-api-1", "crm-api"))
            .with(replica("crm-worker-1", "crm-worker"))
            .allow([
                "label:com.docker.compose.service=crm-api",
                "label:com.docker.compose.service=crm-worker",
            ])
    }

    fn bundled_config() -> Config {
        config(&[
            ("service_label", "service"),
            ("selector_key", KEY),
            ("min_uptime_sec", "60"),
        ])
    }

    #[test]
    fn restarts_every_container_of_the_service_one_at_a_time() {
        let host = bundled_host().install();
        let answer = handle(firing(&[("service", "crm-api")]), bundled_config());
        assert_eq!(
            answer,
            Ok(Outcome::acted(
                "restarted crm-api-1, crm-api-2 of com.docker.compose.service=crm-api"
            ))
        );
        assert_eq!(host.restarted(), vec!["crm-api-1", "crm-api-2"]);
        // Each inspected, then restarted, before the next.
        let calls: Vec<_> = host
            .calls()
            .iter()
            .map(|c| format!("{} {}", c.capability, c.target))
            .collect();
        assert_eq!(
            calls,
            vec![
                "list-by-label com.docker.compose.service=crm-api",
                "inspect crm-api-1",
                "restart crm-api-1",
                "inspect crm-api-2",
                "restart crm-api-2",
            ]
        );
    }

    #[test]
    fn a_young_replica_is_left_alone_and_all_young_is_a_skip() {
        let host = bundled_host()
            .with(replica("crm-api-1", "crm-api").uptime(Some(5)))
            .install();
        let answer = handle(firing(&[("service", "crm-api")]), bundled_config()).unwrap();
        assert_eq!(
            answer,
            Outcome::acted(
                "restarted crm-api-2 of com.docker.compose.service=crm-api; \
                 left alone: crm-api-1 started 5s ago (min_uptime_sec = 60)"
            )
        );
        assert_eq!(host.restarted(), vec!["crm-api-2"]);
        drop(host);

        let host = FakeHost::new()
            .with(replica("crm-worker-1", "crm-worker").uptime(Some(1)))
            .install();
        let answer = handle(firing(&[("service", "crm-worker")]), bundled_config()).unwrap();
        assert!(answer.is_skip(), "{answer:?}");
        assert!(host.restarted().is_empty());
    }

    #[test]
    fn a_service_the_manifest_does_not_list_is_denied() {
        let host = bundled_host().with(replica("billing-1", "billing")).install();
        let err = handle(firing(&[("service", "billing")]), bundled_config()).unwrap_err();
        assert!(
            err.starts_with("cannot list com.docker.compose.service=billing: denied:"),
            "{err}"
        );
        assert!(host.restarted().is_empty());
    }

    #[test]
    fn no_container_is_a_skip() {
        let _host = FakeHost::new().install();
        let answer = handle(firing(&[("service", "crm-api")]), bundled_config()).unwrap();
        assert_eq!(
            answer,
            Outcome::skipped("no container carries com.docker.compose.service=crm-api")
        );
    }

    #[test]
    fn a_failed_restart_stops_and_names_what_was_done() {
        // crm-api-2 inspects fine (the engine cannot say its uptime: restart
        // anyway) but its restart fails in the engine.
        let host = bundled_host().fail("crm-api-2", "engine down").install();
        let err = handle(firing(&[("service", "crm-api")]), bundled_config()).unwrap_err();
        assert_eq!(
            err,
            "restart of crm-api-2 failed: runtime: engine down (already restarted: crm-api-1)"
        );
        assert_eq!(host.restarted(), vec!["crm-api-1"]);
        assert!(
            host.logged("warn")[0].contains("engine down"),
            "{:?}",
            host.log_lines()
        );
    }

    #[test]
    fn config_errors_and_resolved_alerts_need_no_host() {
        assert_resolved_alert_does_nothing(handle, bundled_config());
        let err = handle(firing(&[]), bundled_config()).unwrap_err();
        assert_eq!(
            err,
            "alert has no label `service` to take the service from (config `service_label`)"
        );
        for (key, bad) in [
            ("selector_key", "a=b"),
            ("service_label", " "),
            ("selector_key", "a,b"),
        ] {
            let err = handle(firing(&[("service", "x")]), config(&[(key, bad)])).unwrap_err();
            assert!(err.contains(&format!("`{key}`")), "{key}={bad}: {err}");
        }
        let err = handle(firing(&[("service", "x")]), config(&[("min_uptime_sec", "1m")])).unwrap_err();
        assert!(err.contains("min_uptime_sec"), "{err}");
        assert_eq!(
            Settings::from_config(&config(&[]))
                .unwrap()
                .selector(&firing(&[("service", " crm-api ")])),
            Ok("com.docker.compose.service=crm-api".into())
        );
    }
}
