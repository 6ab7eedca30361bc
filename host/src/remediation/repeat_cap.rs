//! Repeat caps (`[limits] max_actions`, `max_actions_all_keys`): how many
//! real actions each plugin started, per cooldown key and in all, over the
//! windows its manifest names. A remediation that keeps being needed is not
//! working: past a cap the alert is skipped (`repeat_cap`) so that a person
//! looks, instead of the plugin acting again.
//!
//! What counts is a real action that started and was not refunded (its
//! plugin declined: `action_skipped`), like the `[budget]` window. The
//! starts are this host's (counted at admission, read back from the trail at
//! start) and, on replicas, the other replicas' (a mirror of etcd's
//! `repeats/` prefix, replaced wholesale by each read).

use std::sync::{Arc, Mutex, MutexGuard};

use autoheal_sandbox::manifest::{MAX_REPEAT_WINDOW, Manifest, RepeatCap};

/// The counted starts of every plugin.
#[derive(Default)]
pub struct RepeatCaps {
    starts: Mutex<Starts>,
}

#[derive(Default)]
struct Starts {
    /// This host's counted starts.
    own: Vec<Start>,
    /// The other replicas', as last read from the cluster.
    others: Vec<Start>,
    /// Tells this host's starts apart, for a refund.
    next_id: u64,
}

/// One counted action start.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    /// The plugin that acted.
    pub plugin: String,
    /// The cooldown key it acted under.
    pub cooldown_key: String,
    /// When it started (unix seconds).
    pub at: f64,
    id: u64,
}

impl Start {
    /// A start another replica counted (or one read back from the trail).
    pub fn new(plugin: String, cooldown_key: String, at: f64) -> Self {
        Self {
            plugin,
            cooldown_key,
            at,
            id: 0,
        }
    }
}

/// A cap that has no room left: which, and what it counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Reached {
    /// The cap, as the manifest writes it.
    pub cap: RepeatCap,
    /// Its manifest key: `max_actions` or `max_actions_all_keys`.
    pub key: &'static str,
    /// The actions counted in its window (at least its count).
    pub counted: usize,
    /// When the oldest of them leaves the window and the cap has room again.
    pub until: f64,
    /// The cooldown key of the action refused.
    pub cooldown_key: String,
}

impl Reached {
    /// The detail of the skip, naming the window and the cap.
    pub fn detail(&self) -> String {
        let per = match self.key {
            "max_actions" => "",
            _ => " of the plugin, all keys together,",
        };
        format!(
            "{} actions{per} in the last {} (limits.{} \"{}\")",
            self.counted,
            self.cap.window_text(),
            self.key,
            self.cap
        )
    }
}

/// One counted start of this host, taken out again by [`RepeatTicket::refund`]
/// (the plugin declined, it ran in dry-run after all, or another replica
/// acts); dropped otherwise, its start stays counted.
pub struct RepeatTicket {
    caps: Arc<RepeatCaps>,
    id: u64,
    /// When it was counted: with the replica's name, its record in etcd.
    pub at: f64,
    /// The longest window of the plugin's caps: how long the record is kept.
    pub longest: std::time::Duration,
}

impl RepeatTicket {
    /// The action changed nothing: it is not counted.
    pub fn refund(self) {
        self.caps.lock().own.retain(|start| start.id != self.id);
    }
}

impl RepeatCaps {
    /// No start counted yet.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, Starts> {
        self.starts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a start the trail says happened (in any order: counting
    /// does not need them sorted).
    pub fn restore(&self, start: Start) {
        self.lock().own.push(start);
    }

    /// The other replicas' starts, as the cluster has them now.
    pub fn mirror(&self, others: Vec<Start>) {
        self.lock().others = others;
    }

    /// Counts one more real action of `manifest`'s plugin on `cooldown_key`
    /// at `now`, or the first of its caps (shortest window first, the
    /// per-key ones before the plugin's) that has no room. `None`: the
    /// plugin has no cap, nothing is counted.
    pub fn try_take(
        self: &Arc<Self>,
        manifest: &Manifest,
        cooldown_key: &str,
        now: f64,
    ) -> Result<Option<RepeatTicket>, Reached> {
        let Some(longest) = longest_window(manifest) else {
            return Ok(None);
        };
        let mut starts = self.lock();
        if let Some(reached) = starts.first_reached(manifest, cooldown_key, now) {
            return Err(reached);
        }
        starts.next_id += 1;
        let id = starts.next_id;
        starts.own.push(Start {
            plugin: manifest.name.clone(),
            cooldown_key: cooldown_key.to_owned(),
            at: now,
            id,
        });
        Ok(Some(RepeatTicket {
            caps: self.clone(),
            id,
            at: now,
            longest,
        }))
    }

    /// The cap [`RepeatCaps::try_take`] would refuse with, counting nothing:
    /// for an approval's preview, so that no operator is asked for an
    /// action the cap would refuse once approved.
    pub fn would_refuse(&self, manifest: &Manifest, cooldown_key: &str, now: f64) -> Option<Reached> {
        longest_window(manifest)?;
        self.lock().first_reached(manifest, cooldown_key, now)
    }
}

/// The longest window of the plugin's caps; `None` when it has none.
fn longest_window(manifest: &Manifest) -> Option<std::time::Duration> {
    manifest
        .max_actions
        .iter()
        .chain(&manifest.max_actions_all_keys)
        .map(|cap| cap.window)
        .max()
}

impl Starts {
    fn forget_before(&mut self, horizon: f64) {
        self.own.retain(|s| s.at >= horizon);
        self.others.retain(|s| s.at >= horizon);
    }

    /// The first of `manifest`'s caps (shortest window first, the per-key
    /// ones before the plugin's) with no room for an action on `cooldown_key` at `now`.
    fn first_reached(&mut self, manifest: &Manifest, cooldown_key: &str, now: f64) -> Option<Reached> {
        self.forget_before(now - MAX_REPEAT_WINDOW.as_secs_f64());
        let plugin = manifest.name.as_str();
        let per_key = |s: &Start| s.plugin == plugin && s.cooldown_key == cooldown_key;
        let all_keys = |s: &Start| s.plugin == plugin;
        let checks = manifest
            .max_actions
            .iter()
            .map(|cap| (cap, "max_actions", &per_key as &dyn Fn(&Start) -> bool))
            .chain(
                manifest
                    .max_actions_all_keys
                    .iter()
                    .map(|cap| (cap, "max_actions_all_keys", &all_keys as &dyn Fn(&Start) -> bool)),
            );
        for (cap, key, counts) in checks {
            if let Some(reached) = self.reached(cap, key, counts, now) {
                return Some(Reached {
                    cooldown_key: cooldown_key.to_owned(),
                    ..reached
                });
            }
        }
        None
    }

    /// Whether `cap` is full at `now`, counting the starts `counts` accepts.
    fn reached(
        &self,
        cap: &RepeatCap,
        key: &'static str,
        counts: &dyn Fn(&Start) -> bool,
        now: f64,
    ) -> Option<Reached> {
        let horizon = now - cap.window.as_secs_f64();
        let mut times: Vec<f64> = self
            .own
            .iter()
            .chain(&self.others)
            .filter(|s| s.at > horizon && counts(s))
            .map(|s| s.at)
            .collect();
        if times.len() < cap.count as usize {
            return None;
        }
        times.sort_by(f64::total_cmp);
        // Room comes back when all but count-1 of them have left the window.
        let oldest_kept = times[times.len() - cap.count as usize];
        Some(Reached {
            cap: cap.clone(),
            key,
            counted: times.len(),
            until: oldest_kept + cap.window.as_secs_f64(),
            cooldown_key: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_sandbox::manifest::ManifestBounds;

    fn manifest(limits: &str) -> Manifest {
        let text = format!(
            "name = \"restart\"\nversion = \"1\"\ncomponent = \"r.wasm\"\n\
             [match]\nalertnames = [\"Down\"]\n[capabilities]\ncontainers = [\"crm-api\"]\n\
             [limits]\n{limits}\n"
        );
        Manifest::parse("r.toml", &text, ManifestBounds { max_memory_mb: 64 }).unwrap()
    }

    #[test]
    fn a_cap_counts_per_key_and_frees_when_the_oldest_leaves_its_window() {
        let caps = RepeatCaps::new();
        let m = manifest("max_actions = [\"2/1h\", \"3/1d\"]");
        assert!(caps.try_take(&m, "a", 0.0).unwrap().is_some());
        assert!(caps.try_take(&m, "a", 100.0).unwrap().is_some());
        // Another key has its own count.
        assert!(caps.try_take(&m, "b", 100.0).is_ok());
        let reached = caps.try_take(&m, "a", 200.0).err().unwrap();
        assert_eq!(
            (reached.cap.as_str(), reached.key, reached.counted),
            ("2/1h", "max_actions", 2)
        );
        assert_eq!(reached.until, 3600.0, "the first start leaves the hour at 3600 s");
        assert_eq!(
            reached.detail(),
            "2 actions in the last 1h (limits.max_actions \"2/1h\")"
        );
        // An hour after the first: room in the hour, and the day has one left.
        assert!(caps.try_take(&m, "a", 3600.5).unwrap().is_some());
        let reached = caps.try_take(&m, "a", 7300.0).err().unwrap();
        assert_eq!(reached.cap.as_str(), "3/1d");
        assert_eq!(reached.until, 86_400.0);
    }

    #[test]
    fn a_refunded_start_is_not_counted_and_a_plugin_without_caps_counts_nothing() {
        let caps = RepeatCaps::new();
        let m = manifest("max_actions = [\"1/1h\"]");
        let ticket = caps.try_take(&m, "a", 0.0).unwrap().unwrap();
        assert!(caps.try_take(&m, "a", 1.0).is_err());
        ticket.refund();
        assert!(caps.would_refuse(&m, "a", 2.0).is_none());
        assert!(caps.try_take(&m, "a", 2.0).unwrap().is_some());
        // Asking counts nothing: the answer stays the same.
        assert_eq!(caps.would_refuse(&m, "a", 3.0).map(|r| r.counted), Some(1));
        assert_eq!(caps.would_refuse(&m, "a", 3.0).map(|r| r.counted), Some(1));
        assert!(caps.try_take(&manifest(""), "a", 3.0).unwrap().is_none());
    }

    #[test]
    fn the_plugin_cap_counts_every_key_and_other_replicas_count_too() {
        let caps = RepeatCaps::new();
        let m = manifest("max_actions = [\"5/1h\"]\nmax_actions_all_keys = [\"3/1h\"]");
        caps.mirror(vec![Start::new("restart".into(), "a".into(), 10.0)]);
        caps.restore(Start::new("restart".into(), "b".into(), 5.0));
        // Another plugin's start is not this one's.
        caps.restore(Start::new("other".into(), "c".into(), 6.0));
        assert!(caps.try_take(&m, "c", 20.0).unwrap().is_some());
        let reached = caps.try_take(&m, "d", 30.0).err().unwrap();
        assert_eq!(
            (reached.key, reached.counted, reached.until),
            ("max_actions_all_keys", 3, 3605.0)
        );
        assert!(
            reached.detail().contains("all keys together"),
            "{}",
            reached.detail()
        );
        // The mirror is replaced, not added to: the cluster's lease ran out.
        caps.mirror(Vec::new());
        assert!(caps.try_take(&m, "d", 31.0).is_ok());
    }
}
