//! `restart-by-label`: restart the container an alert names in one of its
//! labels, if the plugin's own allow patterns permit it.
//!
//! One manifest serves a whole family of containers: a `ContainerDown` alert
//! with `container="crm-worker"` restarts `crm-worker`, one with
//! `container="billing-api"` restarts `billing-api`.
//!
//! # Two allow-lists, on purpose
//!
//! Taking the container name from an alert means trusting whatever wrote the
//! alert rule, so there are two checks:
//!
//! - The **manifest's** `[capabilities] containers` is the hard boundary. The
//!   host enforces it on every call, whatever the plugin does, and it lists
//!   exact names only.
//! - The **plugin's** `allow` patterns are its own policy, checked before it
//!   calls the host at all. They say which containers this plugin *means* to
//!   restart (`crm-*`: the CRM containers, present and future), and a
//!   container outside them fails with a clear message instead of a `denied`
//!   from the host.
//!
//! A container must pass both. Adding a container to the fleet therefore
//! means listing it in the manifest's capabilities; the pattern may already
//! cover it.
//!
//! # Config keys (the manifest's `[config]` table)
//!
//! - `allow` (required): comma-separated glob patterns, e.g.
//!   `"crm-*,billing-api"`. In a pattern, `*` matches any run of characters
//!   (including none) and everything else matches itself, case-sensitively.
//!   `"*"` allows every container the manifest allows.
//! - `label` (default `"container"`): the alert label whose value is the
//!   container to restart. An alert without that label fails. Name the same
//!   label under `[cooldown_key] labels` in the manifest, so that each
//!   container gets its own cooldown.
//! - `min_uptime_sec` (default `60`): do not restart a container that started
//!   less than this many seconds ago; it is probably still coming up, maybe
//!   from the previous restart.
//!
//! # What it does
//!
//! 1. A resolved alert: nothing.
//! 2. Read the container name from the alert label. Missing, or not matching
//!    any `allow` pattern: fail, without calling the host.
//! 3. Inspect the container. Not found or denied: fail. Started less than
//!    `min_uptime_sec` ago: skip. Inspect failed in the engine: log a warning
//!    and restart anyway (a container that is down is what the alert is
//!    about). This is the SDK's [`uptime::check`], the same guard
//!    `restart-container` uses.
//! 4. Restart it.

use std::fmt;

use autoheal_sdk::prelude::*;
use autoheal_sdk::{remedy, uptime};

export_plugin!(handle);

/// Default for `label`.
const DEFAULT_LABEL: &str = "container";

/// The plugin's config, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    label: String,
    allow: AllowPatterns,
    min_uptime_sec: u64,
}

impl Settings {
    fn from_config(config: &Config) -> Result<Self, String> {
        let label = config.get("label").unwrap_or(DEFAULT_LABEL).trim();
        if label.is_empty() {
            return Err("config key `label` must not be empty".to_string());
        }
        let allow = AllowPatterns::parse(config.require("allow")?);
        if allow.is_empty() {
            return Err(
                "config key `allow` lists no patterns; use e.g. \"crm-*,billing-api\", or \"*\" for any container the manifest allows"
                    .to_string(),
            );
        }
        let min_uptime_sec = uptime::min_uptime_sec(config)?;
        Ok(Settings {
            label: label.to_string(),
            allow,
            min_uptime_sec,
        })
    }

    /// The container this alert is about, if the allow patterns permit it.
    fn container_name(&self, alert: &Alert) -> Result<String, String> {
        let label = &self.label;
        let name = match alert.label(label).map(str::trim) {
            Some(value) if !value.is_empty() => value,
            _ => {
                return Err(format!(
                    "alert has no label `{label}` to take the container name from (config `label`)"
                ));
            }
        };
        if !self.allow.allows(name) {
            return Err(format!(
                "container {name} does not match allow patterns {}",
                self.allow
            ));
        }
        Ok(name.to_string())
    }
}

/// The `allow` config: container names the plugin is willing to restart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowPatterns(Vec<String>);

impl AllowPatterns {
    /// Split `"crm-*, billing-api"` into patterns. Blanks around commas and
    /// empty entries (a trailing comma, say) are ignored.
    fn parse(text: &str) -> Self {
        AllowPatterns(
            text.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `true` if `name` matches at least one pattern (never, if there are
    /// none).
    fn allows(&self, name: &str) -> bool {
        self.0.iter().any(|pattern| glob_match(pattern, name))
    }
}

/// Written back the way the config spells it: `crm-*,billing-api`.
impl fmt::Display for AllowPatterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

/// Does `text` match `pattern`, where `*` matches any run of characters
/// (including none) and everything else matches itself?
///
/// The pieces between the stars must appear in `text` in order: the first
/// one at the start, the last one at the end, the ones in between anywhere,
/// each after the previous. Taking the earliest place for each middle piece
/// leaves the most room for the rest, so one pass decides.
fn glob_match(pattern: &str, text: &str) -> bool {
    let mut pieces: Vec<&str> = pattern.split('*').collect();
    // `split` yields one piece more than there are stars, so at least one.
    let first = pieces.remove(0);
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let Some(last) = pieces.pop() else {
        // No star: the pattern is a plain name and must match all of `text`.
        return rest.is_empty();
    };
    for middle in pieces {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The plugin's entry point: act on one alert.
fn handle(alert: Alert, config: Config) -> Result<Outcome, String> {
    if let Some(answer) = remedy::skip_resolved(&alert) {
        return Ok(answer);
    }
    let settings = Settings::from_config(&config)?;
    let name = settings.container_name(&alert)?;
    remedy::restart_unless_too_young(&name, settings.min_uptime_sec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_sdk::testing::{assert_resolved_alert_does_nothing, config, firing};

    /// The bundled manifest's config.
    fn bundled() -> Settings {
        Settings::from_config(&config(&[("label", "container"), ("allow", "crm-*,billing-api")])).unwrap()
    }

    // --- glob_match ---

    #[test]
    fn glob_exact() {
        assert!(glob_match("billing-api", "billing-api"));
        assert!(!glob_match("billing-api", "billing-api2"));
        assert!(!glob_match("billing-api", "billing"));
        assert!(!glob_match("billing-api", "xbilling-api"));
        assert!(!glob_match("billing-api", ""));
        assert!(!glob_match("Billing-api", "billing-api"), "case-sensitive");
    }

    #[test]
    fn glob_prefix_star() {
        assert!(glob_match("crm-*", "crm-api"));
        assert!(glob_match("crm-*", "crm-worker"));
        assert!(glob_match("crm-*", "crm-"), "`*` matches nothing too");
        assert!(!glob_match("crm-*", "crm"));
        assert!(!glob_match("crm-*", "xcrm-api"));
        assert!(!glob_match("crm-*", "billing-api"));
    }

    #[test]
    fn glob_star_suffix() {
        assert!(glob_match("*-api", "crm-api"));
        assert!(glob_match("*-api", "billing-api"));
        assert!(glob_match("*-api", "-api"));
        assert!(!glob_match("*-api", "crm-api-old"));
        assert!(!glob_match("*-api", "api"));
    }

    #[test]
    fn glob_stars_in_the_middle() {
        assert!(glob_match("a*b*c", "abc"));
        assert!(glob_match("a*b*c", "a-b-c"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(glob_match("a*b*c", "abbbc"));
        assert!(glob_match("a*b*c", "acbc"), "first `b` after `a` is in `cbc`");
        assert!(!glob_match("a*b*c", "ac"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(!glob_match("a*b*c", "abcd"));
        assert!(!glob_match("a*b*c", "xabc"));
        assert!(glob_match("crm-*-v*", "crm-api-v2"));
        assert!(!glob_match("crm-*-v*", "crm-api"));
    }

    #[test]
    fn glob_pieces_do_not_overlap() {
        // The prefix and the suffix may not share characters of `text`.
        assert!(!glob_match("a*a", "a"));
        assert!(glob_match("a*a", "aa"));
        assert!(!glob_match("ab*bc", "abc"));
        assert!(glob_match("ab*bc", "abbc"));
        // Nor may middle pieces share with the suffix.
        assert!(!glob_match("*b*bc", "abc"));
        assert!(glob_match("*b*bc", "abbc"));
    }

    #[test]
    fn glob_star_alone_and_repeated() {
        assert!(glob_match("*", "crm-api"));
        assert!(glob_match("*", ""));
        assert!(glob_match("**", "anything"));
        assert!(glob_match("crm**api", "crm-api"));
        assert!(glob_match("*crm*", "old-crm-api"));
        assert!(!glob_match("*crm*", "billing-api"));
    }

    #[test]
    fn glob_empty_pattern_matches_only_empty_text() {
        assert!(glob_match("", ""));
        assert!(!glob_match("", "crm-api"));
    }

    #[test]
    fn glob_non_ascii() {
        assert!(glob_match("é*ö", "éxyzö"));
        assert!(glob_match("*ü", "grün-ü"));
        assert!(!glob_match("é*", "e-api"));
    }

    // --- AllowPatterns ---

    #[test]
    fn allow_patterns_parse_and_match() {
        let allow = AllowPatterns::parse(" crm-* , billing-api,, ");
        assert_eq!(allow, AllowPatterns(vec!["crm-*".into(), "billing-api".into()]));
        assert_eq!(allow.to_string(), "crm-*,billing-api");
        assert!(allow.allows("crm-api"));
        assert!(allow.allows("crm-worker"));
        assert!(allow.allows("billing-api"));
        assert!(!allow.allows("billing-worker"));
        assert!(!allow.allows("postgres"));
    }

    #[test]
    fn empty_pattern_list_allows_nothing() {
        for text in ["", " ", ",", " , ,"] {
            let allow = AllowPatterns::parse(text);
            assert!(allow.is_empty(), "{text:?}");
            assert!(!allow.allows("crm-api"), "{text:?}");
            assert!(!allow.allows(""), "{text:?}");
        }
    }

    #[test]
    fn star_pattern_allows_everything() {
        let allow = AllowPatterns::parse("*");
        assert!(allow.allows("crm-api"));
        assert!(allow.allows("postgres"));
    }

    // --- Settings ---

    #[test]
    fn defaults() {
        let s = Settings::from_config(&config(&[("allow", "crm-*")])).unwrap();
        assert_eq!(
            s,
            Settings {
                label: "container".into(),
                allow: AllowPatterns(vec!["crm-*".into()]),
                min_uptime_sec: 60,
            }
        );
    }

    #[test]
    fn config_errors() {
        let err = Settings::from_config(&config(&[("label", "container")])).unwrap_err();
        assert_eq!(err, "config key `allow` is required");
        let err = Settings::from_config(&config(&[("allow", " , ")])).unwrap_err();
        assert!(err.contains("`allow` lists no patterns"), "{err}");
        let err = Settings::from_config(&config(&[("allow", "*"), ("label", " ")])).unwrap_err();
        assert_eq!(err, "config key `label` must not be empty");
        let err = Settings::from_config(&config(&[("allow", "*"), ("min_uptime_sec", "1m")])).unwrap_err();
        assert!(err.contains("min_uptime_sec") && err.contains("1m"), "{err}");
    }

    #[test]
    fn container_from_label() {
        let s = bundled();
        assert_eq!(
            s.container_name(&firing(&[("container", "crm-worker")])),
            Ok("crm-worker".into())
        );
        assert_eq!(
            s.container_name(&firing(&[("container", " billing-api ")])),
            Ok("billing-api".into())
        );
        let other = Settings::from_config(&config(&[("label", "name"), ("allow", "*")])).unwrap();
        assert_eq!(
            other.container_name(&firing(&[("name", "crm-api"), ("container", "x")])),
            Ok("crm-api".into())
        );
    }

    #[test]
    fn missing_label() {
        let s = bundled();
        for alert in [
            firing(&[("alertname", "ContainerDown")]),
            firing(&[("container", " ")]),
        ] {
            assert_eq!(
                s.container_name(&alert),
                Err("alert has no label `container` to take the container name from (config `label`)".into())
            );
        }
    }

    #[test]
    fn container_outside_the_patterns() {
        assert_eq!(
            bundled().container_name(&firing(&[("container", "postgres")])),
            Err("container postgres does not match allow patterns crm-*,billing-api".into())
        );
    }

    // --- handle, up to the first host call ---

    #[test]
    fn resolved_alert_does_nothing() {
        assert_resolved_alert_does_nothing(handle, config(&[("allow", "crm-*")]));
    }

    #[test]
    fn refusals_happen_before_any_host_call() {
        // Natively a host call hits `unreachable!()` and aborts the test run, so
        // these passing shows the plugin refuses before calling the host.
        let cfg = config(&[("label", "container"), ("allow", "crm-*,billing-api")]);
        assert_eq!(
            handle(firing(&[("container", "postgres")]), cfg.clone()),
            Err("container postgres does not match allow patterns crm-*,billing-api".into())
        );
        let err = handle(firing(&[]), cfg).unwrap_err();
        assert!(err.contains("no label `container`"), "{err}");
        let err = handle(firing(&[("container", "crm-api")]), config(&[])).unwrap_err();
        assert_eq!(err, "config key `allow` is required");
    }
}
