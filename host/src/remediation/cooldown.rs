//! Cooldowns: after an action is dispatched, the same plugin does not act on
//! the same alert again until the cooldown has passed. They are kept in
//! memory and rebuilt from the audit trail's `action_started` events at start,
//! so restarting the host does not reset them.
//!
//! **Keys.** A cooldown is keyed by plugin, alertname and the labels the
//! manifest names, `plugin|alertname|name=value|...`, each part escaped so
//! that no two alerts share a key while older trails' keys still restore
//! (see [`key`], defined in `autoheal_core::keys` so that the fuzz targets
//! reach it); in a cluster the same key names the action's etcd claim.

use std::collections::HashMap;

use autoheal_core::event::ActionStarted;

pub use autoheal_core::keys::key;

/// Entries beyond this trigger a sweep of expired ones.
const SWEEP_ABOVE: usize = 1024;

/// The cooldowns running, by cooldown key; rebuilt from the audit trail at start.
#[derive(Debug, Default)]
pub struct Cooldowns {
    /// Cooldown key → when it ends.
    until: HashMap<String, Running>,
}

/// One running cooldown.
#[derive(Debug, Clone)]
struct Running {
    /// Unix time it ends.
    until: f64,
    /// The alert it belongs to (metrics are per alertname).
    alertname: String,
}

/// A cooldown still running, for status pages and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveCooldown {
    /// The cooldown key (alertname, plugin and any `cooldown_labels`).
    pub key: String,
    /// The alert it belongs to.
    pub alertname: String,
    /// Seconds left.
    pub remaining_sec: f64,
}

impl Cooldowns {
    /// Seconds left for `key`, if it is cooling down.
    pub fn remaining(&self, key: &str, now: f64) -> Option<f64> {
        self.until
            .get(key)
            .map(|running| running.until - now)
            .filter(|left| *left > 0.0)
    }

    /// Takes back the cooldown `key` (its action was never recorded).
    pub fn forget(&mut self, key: &str) {
        self.until.remove(key);
    }

    /// Starts (or extends) the cooldown `key` until the unix time `until`.
    pub fn start(&mut self, key: String, alertname: &str, until: f64, now: f64) {
        if self.until.len() > SWEEP_ABOVE {
            self.until.retain(|_, running| running.until > now);
        }
        let alertname = alertname.to_owned();
        self.until.insert(key, Running { until, alertname });
    }

    /// Cuts the cooldown `key` to end at `until` if it ends later (a skip:
    /// the action changed nothing); returns when it ends now. A cooldown
    /// already over or taken back is left so.
    pub fn cut(&mut self, key: &str, until: f64, now: f64) -> f64 {
        match self.until.get_mut(key) {
            Some(running) if running.until > until => {
                running.until = until;
                until
            }
            Some(running) => running.until,
            // Taken back (no claim could be asked for): nothing runs.
            None => now.min(until),
        }
    }

    /// The cooldowns still running at `now`.
    pub fn active(&self, now: f64) -> impl Iterator<Item = ActiveCooldown> + '_ {
        self.until
            .iter()
            .filter(move |(_, running)| running.until > now)
            .map(move |(key, running)| ActiveCooldown {
                key: key.clone(),
                alertname: running.alertname.clone(),
                remaining_sec: running.until - now,
            })
    }

    /// Restores the cooldown an `action_started` read back from the trail
    /// began. The trail is read newest first: an older record of a key
    /// already restored is stale.
    pub fn restore(&mut self, started: ActionStarted) {
        self.restore_until(started.cooldown_key, started.alertname, started.cooldown_until);
    }

    /// Restores the cooldown `key` as the newest record of it in the trail
    /// left it: until `until`. One already over is kept too (it reads as
    /// not running), so that an older record of the key, such as the
    /// `action_started` of a skipped action whose `action_skipped` cut its
    /// cooldown, does not restore it.
    pub fn restore_until(&mut self, key: String, alertname: String, until: f64) {
        // No sweep here: an entry over is what settles its key. The trail's
        // horizon (the longest cooldown) bounds how many there are.
        self.until.entry(key).or_insert(Running { until, alertname });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// (label name, value) pairs, as the manifest orders them.
    type Labels<'a> = &'a [(&'a str, &'a str)];

    #[test]
    fn ordinary_keys_are_as_earlier_versions_wrote_them() {
        // What the previous version wrote: format!("{plugin}|{alertname}") then "|{label}={value}" each.
        let old = |plugin: &str, alertname: &str, labels: &[(&str, &str)]| {
            let mut key = format!("{plugin}|{alertname}");
            for (name, value) in labels {
                key.push_str(&format!("|{name}={value}"));
            }
            key
        };
        let cases: &[(&str, &str, Labels)] = &[
            ("restart-crm-api", "TcpEndpointDownFast", &[]),
            (
                "restart-crm-api",
                "TcpEndpointDownFast",
                &[("instance", "crm-api:8000")],
            ),
            // `=` and URLs in a value, spaces, quotes, non-ASCII, empty: unchanged.
            (
                "probe_1",
                "Probe Failed",
                &[
                    ("instance", "http://crm/health?a=b&c==d"),
                    ("job", "blackbox \"http\" ✓"),
                    ("service", ""),
                ],
            ),
        ];
        for (plugin, alertname, labels) in cases {
            assert_eq!(
                key(plugin, alertname, labels.iter().copied()),
                old(plugin, alertname, labels)
            );
        }
    }

    #[test]
    fn colliding_alerts_get_keys_of_their_own() {
        let pairs: &[[(&str, Labels); 2]] = &[
            // A value's `|` passed for the next label.
            [
                ("A", &[("service", "a|instance=b"), ("instance", "c")]),
                ("A", &[("service", "a"), ("instance", "b|instance=c")]),
            ],
            // An alertname's `|` passed for a label.
            [
                ("A|instance=b", &[("instance", "c")]),
                ("A", &[("instance", "b|instance=c")]),
            ],
            // Not one key before, but escaping `|` alone would make them one:
            // a value's trailing `\` and the separator read as an escaped `|`.
            [
                ("A", &[("x", "a\\"), ("y", "b|y=c")]),
                ("A", &[("x", "a|y=b\\"), ("y", "c")]),
            ],
        ];
        for [(a_name, a_labels), (b_name, b_labels)] in pairs {
            let a = key("p", a_name, a_labels.iter().copied());
            let b = key("p", b_name, b_labels.iter().copied());
            assert_ne!(a, b, "{a_name} {a_labels:?} and {b_name} {b_labels:?}");
        }
        assert_eq!(
            key("p", "A", [("service", "a|instance=b"), ("instance", "c")]),
            "p|A|service=a\\|instance=b|instance=c"
        );
    }

    /// Every input over the characters that matter, short enough to list:
    /// no two distinct ones share a key.
    #[test]
    fn no_two_inputs_share_a_key() {
        let mut texts = vec![String::new()];
        for _ in 0..2 {
            let longer: Vec<String> = texts
                .iter()
                .flat_map(|t| ["a", "|", "=", "\\"].map(|c| format!("{t}{c}")))
                .collect();
            texts.extend(longer);
        }
        texts.sort();
        texts.dedup();
        let names = ["x", "x=", "=x", "x|", "\\"];
        let mut label_sets: Vec<Vec<(&str, &str)>> = vec![vec![]];
        for name in names {
            for value in &texts {
                label_sets.push(vec![(name, value)]);
            }
        }
        for value in &texts {
            for other in &texts {
                label_sets.push(vec![("x", value), ("y=", other)]);
            }
        }
        let mut seen: HashMap<String, (&str, Labels)> = HashMap::new();
        for alertname in &texts {
            for labels in &label_sets {
                let k = key("p", alertname, labels.iter().copied());
                if let Some(earlier) = seen.insert(k.clone(), (alertname.as_str(), labels.as_slice())) {
                    panic!("{k:?} is the key of {earlier:?} and of {:?}", (alertname, labels));
                }
            }
        }
    }

    #[test]
    fn a_skip_cuts_a_cooldown_and_never_lengthens_one() {
        let mut cooldowns = Cooldowns::default();
        cooldowns.start("k".into(), "A", 100.0 + 7200.0, 100.0);
        assert_eq!(cooldowns.cut("k", 100.0 + 60.0, 100.0), 160.0);
        assert_eq!(cooldowns.remaining("k", 100.0), Some(60.0));
        // A longer after-skip cooldown than is left: what is left stands.
        assert_eq!(cooldowns.cut("k", 100.0 + 3600.0, 100.0), 160.0);
        // No cooldown after a skip: none runs.
        assert_eq!(cooldowns.cut("k", 100.0, 100.0), 100.0);
        assert_eq!(cooldowns.remaining("k", 100.0), None);
        // A key taken back stays without a cooldown.
        assert_eq!(cooldowns.cut("gone", 200.0, 100.0), 100.0);
        assert_eq!(cooldowns.remaining("gone", 100.0), None);
    }

    #[test]
    fn the_newest_record_of_a_key_decides_even_when_its_cooldown_is_over() {
        // Read newest first: the skip that cut the cooldown, then its start.
        let mut cooldowns = Cooldowns::default();
        cooldowns.restore_until("k".into(), "A".into(), 150.0);
        cooldowns.restore_until("k".into(), "A".into(), 100.0 + 7200.0);
        assert_eq!(cooldowns.remaining("k", 200.0), None);
        assert_eq!(cooldowns.active(200.0).count(), 0);
    }

    #[test]
    fn an_older_trails_key_restores_the_cooldown_of_the_same_alert() {
        let line = r#"{"id":6,"ts":1796207274.29,"kind":"action_started","alertname":"TcpEndpointDownFast","cooldown_key":"restart-crm-api|TcpEndpointDownFast|instance=crm-api:8000","cooldown_sec":3600,"cooldown_until":1796210874.29,"fingerprint":"717fc25c13187b79","mode":"real","plugin":"restart-crm-api","plugin_version":"1.0.0","status":"firing"}"#;
        let event: autoheal_core::event::Event = serde_json::from_str(line).unwrap();
        let autoheal_core::event::EventBody::ActionStarted(started) = event.body else {
            panic!("an action_started");
        };
        let mut cooldowns = Cooldowns::default();
        cooldowns.restore(started);
        let now = key(
            "restart-crm-api",
            "TcpEndpointDownFast",
            [("instance", "crm-api:8000")],
        );
        assert!(cooldowns.remaining(&now, 1796207300.0).is_some());
    }
}
