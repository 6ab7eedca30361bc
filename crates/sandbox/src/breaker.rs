//! The restart circuit breaker: at most `max_restarts` real restarts of the
//! same container within `window`, whichever plugin asks. Beyond that the
//! call is refused with `circuit_open` until the oldest restart leaves the
//! window. It is the guard against restart loops, and it is rebuilt from the
//! audit trail at start so that restarting the host does not reset it.
//!
//! Replicas of a cluster also share their restarts ([`SharedHistory`]): a
//! restart counts against every replica's breaker, and one that cannot be
//! counted there (the cluster does not answer) is not sent.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autoheal_core::audit::{line_has_kind, line_ts, scan_backwards};
use autoheal_core::event::{ActionInterrupted, Event, EventBody};
use autoheal_core::util::unix_now;

/// The restart circuit breaker: at most `max_restarts` real restarts of one container per window, shared by all plugins.
pub struct RestartBreaker {
    max_restarts: u32,
    window: Duration,
    /// Container → unix times of its recent real restarts, oldest first.
    history: Mutex<HashMap<String, VecDeque<f64>>>,
    /// The restarts of every replica, in a cluster.
    shared: Option<Arc<dyn SharedHistory>>,
}

/// The restarts every replica of a cluster has made, kept where all of them see it.
#[async_trait::async_trait]
pub trait SharedHistory: Send + Sync {
    /// Counts a restart of `container` at `now`, unless `max` restarts
    /// already happened in the `window` before it.
    async fn record(
        &self,
        container: &str,
        now: f64,
        max: u32,
        window: Duration,
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
    "circuit_open: {container} was restarted {restarts} times in the last {window}; \
     the breaker closes in {closes_in_sec} s"
)]
pub struct CircuitOpen {
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
        Self {
            max_restarts,
            window,
            history: Mutex::new(HashMap::new()),
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
        let now = unix_now();
        self.try_restart_at(container, now)?;
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        match shared
            .record(container, now, self.max_restarts, self.window)
            .await
        {
            Ok(()) => Ok(()),
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
                        container: container.to_owned(),
                        restarts,
                        window: humantime::format_duration(self.window).to_string(),
                        closes_in_sec: closes_in_sec.ceil(),
                    }),
                    SharedRefusal::Unavailable(why) => Refused::Unavailable(why),
                })
            }
        }
    }

    fn try_restart_at(&self, container: &str, now: f64) -> Result<(), CircuitOpen> {
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let window = self.window.as_secs_f64();
        let times = history.entry(container.to_owned()).or_default();
        while times.front().is_some_and(|t| *t <= now - window) {
            times.pop_front();
        }
        if times.len() >= self.max_restarts as usize {
            let closes_in = times.front().map(|t| t + window - now).unwrap_or(0.0).ceil();
            return Err(CircuitOpen {
                container: container.to_owned(),
                restarts: times.len(),
                window: humantime::format_duration(self.window).to_string(),
                closes_in_sec: closes_in,
            });
        }
        times.push_back(now);
        Ok(())
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
        let mut found: Vec<(String, f64)> = Vec::new();
        let mut answered: HashSet<u64> = HashSet::new();
        let mut interrupted = Vec::new();
        scan_backwards(audit_path, |line| {
            if line_ts(line).is_some_and(|ts| ts < oldest) {
                return ControlFlow::Break(());
            }
            const KINDS: &[&str] = &["action_ok", "action_fail", "action_interrupted", "restart_intent"];
            if !line_has_kind(line, KINDS) {
                return ControlFlow::Continue(());
            }
            let Ok(event) = serde_json::from_slice::<Event>(line) else {
                return ControlFlow::Continue(());
            };
            match event.body {
                EventBody::ActionOk(finished) | EventBody::ActionFail(finished) => {
                    for call in finished.calls.into_iter().filter(|c| c.is_real_restart()) {
                        match call.intent {
                            // Counted at its intent, which is older: seen later.
                            Some(intent) => {
                                answered.insert(intent);
                            }
                            None => found.push((call.target, event.ts)),
                        }
                    }
                }
                EventBody::ActionInterrupted(reported) => {
                    answered.insert(reported.intent);
                }
                EventBody::RestartIntent(intent) => {
                    if !answered.contains(&event.id) {
                        interrupted.push(ActionInterrupted {
                            container: intent.container.clone(),
                            intent: event.id,
                            intent_ts: event.ts,
                            plugin: intent.plugin,
                        });
                    }
                    found.push((intent.container, event.ts));
                }
                _ => {}
            }
            ControlFlow::Continue(())
        })?;
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        for (container, ts) in found.iter().rev() {
            history.entry(container.clone()).or_default().push_back(*ts);
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

    #[test]
    fn opens_after_the_limit_and_closes_when_the_window_passes() {
        let breaker = RestartBreaker::new(2, Duration::from_secs(60));
        assert!(breaker.try_restart_at("crm-api", 1000.0).is_ok());
        assert!(breaker.try_restart_at("crm-api", 1010.0).is_ok());
        let refusal = breaker.try_restart_at("crm-api", 1020.0).unwrap_err().to_string();
        assert!(
            refusal.starts_with("circuit_open: crm-api was restarted 2 times"),
            "{refusal}"
        );
        assert!(refusal.contains("closes in 40 s"), "{refusal}");
        // Other containers have their own count.
        assert!(breaker.try_restart_at("db", 1020.0).is_ok());
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
        assert!(breaker.try_restart_at("crm-api", 1059.0).is_err());
        assert!(breaker.try_restart_at("crm-api", 1060.5).is_ok());
        assert!(breaker.try_restart_at("crm-api", 1061.0).is_err());
    }
}
