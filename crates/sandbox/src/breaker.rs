//! The circuit breakers of effects: at most `max_restarts` real restarts of
//! the same container within `window`, whichever plugin asks (and, each
//! counted apart, at most `max_signals` signals and `max_execs` commands).
//! Beyond that the call is refused with `circuit_open` until the oldest
//! leaves the window. They are the guard against remediation loops, keyed by
//! call and container, and rebuilt from the audit trail at start so that
//! restarting the host does not reset them.
//!
//! Replicas of a cluster also share their restarts ([`SharedHistory`]): a
//! restart counts against every replica's breaker, and one that cannot be
//! counted there (the cluster does not answer) is not sent. Signals and
//! commands are counted by each replica for itself.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autoheal_core::audit::{line_has_kind, line_ts, scan_backwards};
use autoheal_core::event::{ActionInterrupted, Event, EventBody};
use autoheal_core::invocation::Capability;
use autoheal_core::util::unix_now;

/// A circuit breaker of one effect (restarts unless made with
/// [`RestartBreaker::for_effect`]): at most `max_restarts` real ones per
/// container per window, shared by all plugins.
pub struct RestartBreaker {
    /// The effect it counts.
    capability: Capability,
    max_restarts: u32,
    window: Duration,
    /// Container → unix times of its recent real restarts, oldest first.
    history: Mutex<HashMap<String, VecDeque<f64>>>,
    /// Container → its latest restart, which a request for another alert
    /// may join.
    latest: Mutex<HashMap<String, Latest>>,
    /// The restarts of every replica, in a cluster.
    shared: Option<Arc<dyn SharedHistory>>,
}

/// The restarts every replica of a cluster has made, kept where all of them see it.
#[async_trait::async_trait]
pub trait SharedHistory: Send + Sync {
    /// Counts a restart of `container` at `now`, unless `max` restarts
    /// already happened in the `window` before it.
    /// A restart for another alert within `joining.within` before `now`
    /// (by any replica) is joined instead: nothing is counted, and the
    /// answer says how long ago.
    async fn record(
        &self,
        container: &str,
        now: f64,
        max: u32,
        window: Duration,
        joining: &Joining,
    ) -> Result<(), SharedRefusal>;

    /// Every container's restarts, by any replica, in the `window` before
    /// `now`, oldest first: what the breaker shows ([`RestartBreaker::usage`]).
    async fn recent(&self, now: f64, window: Duration) -> Result<Vec<(String, Vec<f64>)>, String>;
}

/// One container's restarts inside the window, as the breaker counts them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ContainerUsage {
    /// The container, as plugins name it (`NAME/container` on a named engine).
    pub container: String,
    /// Real restarts inside the window.
    pub spent: usize,
    /// Restarts the window allows (`circuit_breaker.max_restarts`).
    pub allowed: u32,
    /// Whether the next restart would be refused (`circuit_open`).
    pub open: bool,
    /// Unix time at which the oldest of them leaves the window: a place frees up.
    pub frees_at: f64,
    /// Seconds until then.
    pub frees_in_sec: f64,
}

/// What a breaker knows of the restarts inside its window, for `GET /`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Usage {
    /// Restarts allowed per container per window.
    pub max_restarts: u32,
    /// The window, in seconds.
    pub window_sec: f64,
    /// `local` (this host's restarts) or `cluster` (every replica's, the
    /// history the breaker of a replica decides by).
    pub source: &'static str,
    /// In a cluster, why the shared history could not be read (then
    /// `source` is `local`: this replica's restarts only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_error: Option<String>,
    /// The containers with restarts inside the window, the fullest first.
    pub containers: Vec<ContainerUsage>,
}

/// Why the shared history did not count a restart.
#[derive(Debug, Clone, PartialEq)]
pub enum SharedRefusal {
    /// The window is full: `restarts` in it, the oldest leaves in `closes_in_sec`.
    Open {
        /// Restarts inside the window, by any replica.
        restarts: usize,
        /// Seconds until the oldest leaves the window.
        closes_in_sec: f64,
    },
    /// The history could not be asked; the restart is not sent.
    Unavailable(String),
    /// A replica restarted the container `age_sec` ago, within the target
    /// cooldown: this request joins that restart.
    Joined {
        /// Seconds since that restart.
        age_sec: f64,
    },
}

/// The latest restart of a container.
#[derive(Debug, Clone)]
struct Latest {
    /// When it was counted.
    at: f64,
    /// The fingerprint of the alert it was for.
    alert: String,
    /// It failed at the engine: nothing to join.
    failed: bool,
}

/// Who asks for a restart, and how long after another alert's restart of
/// the same container it joins that one instead.
#[derive(Debug, Clone, Default)]
pub struct Joining {
    /// The target cooldown (zero: never join).
    pub within: Duration,
    /// The fingerprint of the alert the restart is for: a restart is never
    /// joined to one made for the same alert (an escalation's next step,
    /// or the alert again after its cooldown, means the last one did not help).
    pub alert: String,
}

/// What the breaker said to a restart request it did not refuse.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// Counted: send the restart.
    Restart {
        /// When it was counted (to report a failure against).
        at: f64,
    },
    /// The container was restarted `age_sec` ago (or is being restarted),
    /// within the target cooldown: do not send another.
    Join {
        /// Seconds since that restart was counted.
        age_sec: f64,
    },
}

/// A restart the breaker does not allow.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refused {
    /// Too many restarts in the window.
    #[error(transparent)]
    Open(#[from] CircuitOpen),
    /// In a cluster: the restarts of the other replicas could not be counted.
    #[error("the cluster's restart history could not be asked, the restart is not sent: {0}")]
    Unavailable(String),
}

/// A restart refused because the container's breaker is open.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "circuit_open: {container} was {done} {restarts} times in the last {window}; \
     the breaker closes in {closes_in_sec} s"
)]
pub struct CircuitOpen {
    /// What was done to it: `restarted`, `signalled`, `sent commands`.
    pub done: &'static str,
    /// The container whose restarts are counted.
    pub container: String,
    /// Real restarts inside the window.
    pub restarts: usize,
    /// The window, as a person reads it (`1h`).
    pub window: String,
    /// Seconds until the oldest restart leaves the window.
    pub closes_in_sec: f64,
}

impl RestartBreaker {
    /// A breaker with no restarts counted yet.
    pub fn new(max_restarts: u32, window: Duration) -> Self {
        Self::for_effect(Capability::ContainersRestart, max_restarts, window)
    }

    /// A breaker of `capability` (an effect), with nothing counted yet.
    pub fn for_effect(capability: Capability, max: u32, window: Duration) -> Self {
        debug_assert!(capability.is_effect(), "{capability:?}");
        Self {
            capability,
            max_restarts: max,
            window,
            history: Mutex::new(HashMap::new()),
            latest: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// Counts every replica's restarts too (see [`SharedHistory`]).
    pub fn shared_with(mut self, shared: Arc<dyn SharedHistory>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Counts a restart of `container` now, here and (in a cluster) in the
    /// history every replica shares, or says why not.
    pub async fn admit(&self, container: &str) -> Result<(), Refused> {
        self.admit_or_join(container, &Joining::default())
            .await
            .map(|_| ())
    }

    /// [`Self::admit`], unless the container was restarted for another
    /// alert (by any plugin, and in a cluster by any replica) less than
    /// `joining.within` ago, or is being restarted: then the request joins
    /// that restart, and nothing is counted. One fault seen by two alerts
    /// restarts its container once.
    pub async fn admit_or_join(&self, container: &str, joining: &Joining) -> Result<Admission, Refused> {
        let now = unix_now();
        if let Some(age_sec) = self.try_restart_at(container, now, joining)? {
            return Ok(Admission::Join { age_sec });
        }
        let Some(shared) = &self.shared else {
            return Ok(Admission::Restart { at: now });
        };
        match shared
            .record(container, now, self.max_restarts, self.window, joining)
            .await
        {
            Ok(()) => Ok(Admission::Restart { at: now }),
            Err(refusal) => {
                // Not sent: it does not count here either.
                let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(times) = history.get_mut(container) {
                    times.pop_back();
                }
                Err(match refusal {
                    SharedRefusal::Open {
                        restarts,
                        closes_in_sec,
                    } => Refused::Open(CircuitOpen {
                        done: self.done(),
                        container: container.to_owned(),
                        restarts,
                        window: humantime::format_duration(self.window).to_string(),
                        closes_in_sec: closes_in_sec.ceil(),
                    }),
                    SharedRefusal::Unavailable(why) => Refused::Unavailable(why),
                    SharedRefusal::Joined { age_sec } => return Ok(Admission::Join { age_sec }),
                })
            }
        }
    }

    /// Gives back the place of the latest call on `container` if it failed
    /// (see [`Self::restart_failed`]): the engine was not there, so nothing
    /// was done and a retry must not find the breaker spent by the outage.
    /// Only this host's count: in a cluster the shared history keeps it.
    pub fn give_back_failed(&self, container: &str) -> bool {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        let Some(last) = latest.get(container).filter(|l| l.failed).cloned() else {
            return false;
        };
        latest.remove(container);
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let Some(times) = history.get_mut(container) else {
            return false;
        };
        match times.iter().rposition(|t| *t == last.at) {
            Some(at) => {
                times.remove(at);
                true
            }
            None => false,
        }
    }

    /// What its `circuit_open` says was done to the container.
    fn done(&self) -> &'static str {
        match self.capability {
            Capability::ContainersSignal => "signalled",
            Capability::ContainersExec => "sent commands",
            Capability::HttpRequest => "sent requests",
            _ => "restarted",
        }
    }

    /// The effect it counts.
    pub fn capability(&self) -> Capability {
        self.capability
    }

    /// The restart counted at `at` failed at the engine: later requests
    /// for the container do not join it (it still counts in the window).
    pub fn restart_failed(&self, container: &str, at: f64) {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(latest) = latest.get_mut(container).filter(|l| l.at == at) {
            latest.failed = true;
        }
    }

    /// Counts a restart at `now`; or `Some(age)` of the latest restart when
    /// it is joined; or the open breaker.
    fn try_restart_at(
        &self,
        container: &str,
        now: f64,
        joining: &Joining,
    ) -> Result<Option<f64>, CircuitOpen> {
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let window = self.window.as_secs_f64();
        let times = history.entry(container.to_owned()).or_default();
        while times.front().is_some_and(|t| *t <= now - window) {
            times.pop_front();
        }
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(last) = latest.get(container)
            && !last.failed
            && last.alert != joining.alert
            && now - last.at < joining.within.as_secs_f64()
        {
            return Ok(Some((now - last.at).max(0.0)));
        }
        if times.len() >= self.max_restarts as usize {
            let closes_in = times.front().map(|t| t + window - now).unwrap_or(0.0).ceil();
            return Err(CircuitOpen {
                done: self.done(),
                container: container.to_owned(),
                restarts: times.len(),
                window: humantime::format_duration(self.window).to_string(),
                closes_in_sec: closes_in,
            });
        }
        times.push_back(now);
        latest.insert(
            container.to_owned(),
            Latest {
                at: now,
                alert: joining.alert.clone(),
                failed: false,
            },
        );
        Ok(None)
    }

    /// The restarts inside the window now, per container: in a cluster
    /// (and if `ask_shared`) every replica's, from the shared history the
    /// breaker decides by; else (or if that cannot be read) this host's.
    pub async fn usage(&self, ask_shared: bool) -> Usage {
        let now = unix_now();
        let mut shared_error = None;
        if let (Some(shared), true) = (&self.shared, ask_shared) {
            match shared.recent(now, self.window).await {
                Ok(recent) => return self.usage_of(now, recent, "cluster", None),
                Err(e) => shared_error = Some(e),
            }
        } else if self.shared.is_some() {
            shared_error = Some("the cluster is not available".to_owned());
        }
        let local = {
            let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
            history
                .iter()
                .map(|(container, times)| (container.clone(), times.iter().copied().collect()))
                .collect()
        };
        self.usage_of(now, local, "local", shared_error)
    }

    fn usage_of(
        &self,
        now: f64,
        recent: Vec<(String, Vec<f64>)>,
        source: &'static str,
        shared_error: Option<String>,
    ) -> Usage {
        let window = self.window.as_secs_f64();
        let mut containers: Vec<ContainerUsage> = recent
            .into_iter()
            .filter_map(|(container, mut times)| {
                times.retain(|t| *t > now - window);
                times.sort_by(f64::total_cmp);
                let oldest = *times.first()?;
                Some(ContainerUsage {
                    container,
                    spent: times.len(),
                    allowed: self.max_restarts,
                    open: times.len() >= self.max_restarts as usize,
                    frees_at: oldest + window,
                    frees_in_sec: (oldest + window - now).max(0.0).ceil(),
                })
            })
            .collect();
        containers.sort_by(|a, b| b.spent.cmp(&a.spent).then_with(|| a.container.cmp(&b.container)));
        Usage {
            max_restarts: self.max_restarts,
            window_sec: window,
            source,
            shared_error,
            containers,
        }
    }

    /// Restores the restarts inside the window from the trail: each
    /// `restart_intent` (written before a real restart is sent, so one cut
    /// short by a crash counts too), and, in trails from before intents, the
    /// real restarts listed in `action_ok` and `action_fail` (a restart that
    /// reached the engine counts even if it failed there). Returns them with
    /// the intents that no action event answered: interrupted actions.
    pub fn rebuild(&self, audit_path: &Path) -> std::io::Result<Rebuilt> {
        let now = unix_now();
        let oldest = now - self.window.as_secs_f64();
        // (container, time, the restart is known to have succeeded).
        let mut found: Vec<(String, f64, bool)> = Vec::new();
        let mut answered: HashSet<u64> = HashSet::new();
        let mut succeeded: HashSet<u64> = HashSet::new();
        let mut interrupted = Vec::new();
        scan_backwards(audit_path, |line| {
            if line_ts(line).is_some_and(|ts| ts < oldest) {
                return ControlFlow::Break(());
            }
            // `action_skipped` holds no restart (one that tried a restart is
            // recorded as acted), but it answers any intent all the same.
            const KINDS: &[&str] = &[
                "action_ok",
                "action_fail",
                "action_skipped",
                "action_interrupted",
                "restart_intent",
                "effect_intent",
            ];
            let restarts = self.capability == Capability::ContainersRestart;
            if !line_has_kind(line, KINDS) {
                return ControlFlow::Continue(());
            }
            let Ok(event) = serde_json::from_slice::<Event>(line) else {
                return ControlFlow::Continue(());
            };
            match event.body {
                EventBody::ActionOk(finished)
                | EventBody::ActionFail(finished)
                | EventBody::ActionSkipped(finished) => {
                    let counted = finished
                        .calls
                        .into_iter()
                        .filter(|c| c.capability == self.capability && c.is_real_effect());
                    for call in counted {
                        let ok = call.outcome == autoheal_core::invocation::CallOutcome::Ok;
                        match call.intent {
                            // Counted at its intent, which is older: seen later.
                            Some(intent) => {
                                answered.insert(intent);
                                if ok {
                                    succeeded.insert(intent);
                                }
                            }
                            None => found.push((call.target, event.ts, ok)),
                        }
                    }
                }
                EventBody::ActionInterrupted(reported) => {
                    answered.insert(reported.intent);
                }
                EventBody::RestartIntent(intent) if restarts => {
                    if !answered.contains(&event.id) {
                        interrupted.push(ActionInterrupted {
                            container: intent.container.clone(),
                            capability: None,
                            intent: event.id,
                            intent_ts: event.ts,
                            plugin: intent.plugin,
                        });
                    }
                    found.push((intent.container, event.ts, succeeded.contains(&event.id)));
                }
                EventBody::EffectIntent(intent) if intent.capability == self.capability => {
                    if !answered.contains(&event.id) {
                        interrupted.push(ActionInterrupted {
                            container: intent.target.clone(),
                            capability: Some(intent.capability),
                            intent: event.id,
                            intent_ts: event.ts,
                            plugin: intent.plugin,
                        });
                    }
                    found.push((intent.target, event.ts, succeeded.contains(&event.id)));
                }
                _ => {}
            }
            ControlFlow::Continue(())
        })?;
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        for (container, ts, ok) in found.iter().rev() {
            history.entry(container.clone()).or_default().push_back(*ts);
            // The trail does not say which alert a restart was for: after a
            // start, every alert may join the latest restart found, if it is
            // known to have worked (not failed, not cut short by a crash).
            latest.insert(
                container.clone(),
                Latest {
                    at: *ts,
                    alert: String::new(),
                    failed: !ok,
                },
            );
        }
        interrupted.reverse();
        Ok(Rebuilt {
            restarts: found.len(),
            interrupted,
        })
    }
}

/// What [`RestartBreaker::rebuild`] found in the trail.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebuilt {
    /// Real restarts inside the window, done or interrupted.
    pub restarts: usize,
    /// Intents no action event answered, oldest first, not reported before.
    pub interrupted: Vec<ActionInterrupted>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker_history(breaker: &RestartBreaker) -> Vec<(String, Vec<f64>)> {
        let history = breaker.history.lock().unwrap();
        history
            .iter()
            .map(|(c, t)| (c.clone(), t.iter().copied().collect()))
            .collect()
    }

    #[tokio::test]
    async fn a_failed_call_given_back_frees_its_place_and_a_good_one_cannot_be() {
        let breaker = RestartBreaker::new(1, Duration::from_secs(3600));
        let Ok(Admission::Restart { at }) = breaker.admit_or_join("api", &Joining::default()).await else {
            panic!("the first restart is admitted");
        };
        assert!(!breaker.give_back_failed("api"), "it did not fail");
        breaker.restart_failed("api", at);
        assert!(breaker.give_back_failed("api"));
        breaker.admit("api").await.expect("its place was given back");
        assert!(breaker.admit("api").await.is_err(), "one place, spent again");
    }

    #[test]
    fn opens_after_the_limit_and_closes_when_the_window_passes() {
        let breaker = RestartBreaker::new(2, Duration::from_secs(60));
        assert!(
            breaker
                .try_restart_at("crm-api", 1000.0, &Joining::default())
                .is_ok()
        );
        assert!(
            breaker
                .try_restart_at("crm-api", 1010.0, &Joining::default())
                .is_ok()
        );
        let refusal = breaker
            .try_restart_at("crm-api", 1020.0, &Joining::default())
            .unwrap_err()
            .to_string();
        assert!(
            refusal.starts_with("circuit_open: crm-api was restarted 2 times"),
            "{refusal}"
        );
        assert!(refusal.contains("closes in 40 s"), "{refusal}");
        // Other containers have their own count.
        assert!(breaker.try_restart_at("db", 1020.0, &Joining::default()).is_ok());
        let usage = breaker.usage_of(1030.0, breaker_history(&breaker), "local", None);
        assert_eq!(usage.containers.len(), 2);
        let crm = &usage.containers[0];
        assert_eq!(
            (crm.container.as_str(), crm.spent, crm.allowed),
            ("crm-api", 2, 2)
        );
        assert!(crm.open);
        assert_eq!((crm.frees_at, crm.frees_in_sec), (1060.0, 30.0));
        assert_eq!((usage.containers[1].spent, usage.containers[1].open), (1, false));
        // A refused call does not count; the first restart leaves the window at 1060.
        assert!(
            breaker
                .try_restart_at("crm-api", 1059.0, &Joining::default())
                .is_err()
        );
        assert!(
            breaker
                .try_restart_at("crm-api", 1060.5, &Joining::default())
                .is_ok()
        );
        assert!(
            breaker
                .try_restart_at("crm-api", 1061.0, &Joining::default())
                .is_err()
        );
    }

    /// A request for `alert`, joining within a minute.
    fn for_alert(alert: &str) -> Joining {
        Joining {
            within: Duration::from_secs(60),
            alert: alert.into(),
        }
    }

    #[test]
    fn a_restart_within_the_target_cooldown_is_joined_and_not_counted() {
        let breaker = RestartBreaker::new(3, Duration::from_secs(3600));
        assert_eq!(
            breaker.try_restart_at("crm-api", 1000.0, &for_alert("probe")),
            Ok(None)
        );
        // A second alert of the same fault, 2 s later: joined, not counted.
        assert_eq!(
            breaker.try_restart_at("crm-api", 1002.0, &for_alert("scrape")),
            Ok(Some(2.0))
        );
        assert_eq!(
            breaker.try_restart_at("crm-api", 1059.0, &for_alert("scrape")),
            Ok(Some(59.0))
        );
        // Past the target cooldown: a restart of its own, the second counted.
        assert_eq!(
            breaker.try_restart_at("crm-api", 1061.0, &for_alert("scrape")),
            Ok(None)
        );
        // The same alert again (an escalation's next step) is never joined:
        // the last restart did not help it. The third counted.
        assert_eq!(
            breaker.try_restart_at("crm-api", 1062.0, &for_alert("scrape")),
            Ok(None)
        );
        // Another container is not joined to this one's restart.
        assert_eq!(
            breaker.try_restart_at("db", 1062.0, &for_alert("probe")),
            Ok(None)
        );
        // Without a target cooldown nothing is joined: the fourth is refused.
        assert!(
            breaker
                .try_restart_at("crm-api", 1064.0, &Joining::default())
                .is_err()
        );
    }

    #[test]
    fn a_restart_that_failed_is_not_joined() {
        let breaker = RestartBreaker::new(3, Duration::from_secs(3600));
        assert_eq!(
            breaker.try_restart_at("crm-api", 1000.0, &for_alert("probe")),
            Ok(None)
        );
        breaker.restart_failed("crm-api", 1000.0);
        assert_eq!(
            breaker.try_restart_at("crm-api", 1005.0, &for_alert("scrape")),
            Ok(None)
        );
        assert_eq!(
            breaker.try_restart_at("crm-api", 1006.0, &for_alert("probe")),
            Ok(Some(1.0))
        );
    }
}
