//! Operators' pauses: while one is active, the actions it covers (its
//! plugin, or every plugin; alerts its matchers match, or every alert) are
//! skipped as `paused`, before any cooldown or budget is taken. A pause
//! ends by itself at its `until` (the follow-up tick), or when an operator
//! resumes it. The store only keeps the state; the coordinator records
//! `pause_started` and `pause_ended` and, on a replica, shares them
//! (`shared_pauses`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use autoheal_api::pauses::{MAX_PAUSE_SEC, Pause, PauseRequest};
use autoheal_core::alert::Alert;
use autoheal_core::event::{ActedBy, PauseEndReason, PauseEnded, PauseStarted};
use autoheal_core::matcher::{Matcher, MatcherError, parse_matchers};
use autoheal_core::util::parse_duration;

use super::decide::{SkipReason, Verdict};

/// Longest `reason` kept, in bytes.
pub const MAX_REASON_BYTES: usize = 512;
/// Pauses active at once: each webhook's decisions look at every one.
pub const MAX_ACTIVE_PAUSES: usize = 64;
/// How long an ended pause's id is remembered, so that a replica does not
/// take up again, from etcd, a pause it has just seen end.
const ENDED_KEPT_SEC: f64 = 60.0;

/// A pause request that cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    /// No reason given.
    #[error("a pause needs a reason (for the people who will see the skips)")]
    NoReason,
    /// `duration` does not parse, is zero, or is past the bound.
    #[error("duration {0:?}: {1}")]
    Duration(String, String),
    /// Matchers that do not parse, or that a pause cannot evaluate.
    #[error("matchers {0:?}: {1}")]
    Matchers(String, String),
    /// An empty or odd plugin name.
    #[error("plugin {0:?} is not a plugin name")]
    Plugin(String),
    /// Too many at once.
    #[error("{MAX_ACTIVE_PAUSES} pauses are already active, the most that may be")]
    TooMany,
    /// No active pause has this id.
    #[error("no active pause {0:?} (GET /pauses lists them)")]
    Unknown(String),
}

/// The pause that stopped an action, as its skip carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct PausedBy {
    /// `pause_id`.
    pub id: String,
    /// `pause_reason`.
    pub reason: String,
    /// `paused_until`.
    pub until: f64,
}

/// A maintenance window stops an action as a pause does, under its
/// `window:NAME` id.
impl From<crate::maintenance::Cover> for PausedBy {
    fn from(cover: crate::maintenance::Cover) -> Self {
        Self {
            id: cover.pause_id,
            reason: cover.reason,
            until: cover.until,
        }
    }
}

struct Active {
    pause: Pause,
    matchers: Vec<Matcher>,
    /// Since which listing of the cluster's pauses (`State::listing`) the
    /// cluster has it (published, or read from it); `None`: not yet.
    shared: Option<u64>,
}

struct Ended {
    until: f64,
    /// Ended by an operator (the cluster must hear of it), not expired.
    resumed: Option<Option<String>>,
}

#[derive(Default)]
struct State {
    active: HashMap<String, Active>,
    ended: HashMap<String, Ended>,
    /// Counts the listings of the cluster's pauses begun (`begin_listing`).
    listing: u64,
}

/// The active pauses, and those ended a moment ago.
#[derive(Default)]
pub struct Pauses {
    state: Mutex<State>,
}

/// A pause checked and ready to start (`Pauses::start`).
pub struct NewPause {
    /// The pause.
    pub pause: Pause,
    matchers: Vec<Matcher>,
}

impl NewPause {
    /// Checks an operator's request: a reason, a duration within
    /// `MAX_PAUSE_SEC`, matchers a pause can evaluate; `id` and `by` are
    /// the caller's. `now` is when it starts.
    pub fn from_request(
        request: PauseRequest,
        id: String,
        replica: Option<String>,
        now: f64,
    ) -> Result<Self, PauseError> {
        let reason = request.reason.trim();
        if reason.is_empty() {
            return Err(PauseError::NoReason);
        }
        let reason = autoheal_core::util::truncate_with_marker(reason, MAX_REASON_BYTES)
            .unwrap_or_else(|| reason.to_owned());
        let duration = parse_duration(&request.duration)
            .map_err(|e| PauseError::Duration(request.duration.clone(), e.reason))?;
        if duration.is_zero() {
            return Err(PauseError::Duration(
                request.duration,
                "must be more than 0".into(),
            ));
        }
        if duration.as_secs() > MAX_PAUSE_SEC {
            return Err(PauseError::Duration(
                request.duration,
                format!(
                    "at most {} days: a longer stop is the kill switch (autoheal disable), on purpose",
                    MAX_PAUSE_SEC / 86400
                ),
            ));
        }
        let plugin = request
            .plugin
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty());
        if let Some(plugin) = &plugin
            && (plugin.len() > 64
                || !plugin
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(PauseError::Plugin(plugin.clone()));
        }
        let text = request
            .matchers
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty());
        let matchers = match &text {
            Some(text) => parse_scope(text)?,
            None => Vec::new(),
        };
        let pause = Pause {
            id,
            plugin,
            matchers: text,
            reason,
            by: request.by,
            by_comment: None,
            by_kind: None,
            by_name: None,
            until: now + duration.as_secs_f64(),
            replica,
        };
        Ok(Self { pause, matchers })
    }

    /// A pause as recorded (`pause_started`) or shared; `None` if its
    /// matchers no longer parse (never: they were checked when it began).
    pub fn from_pause(pause: Pause) -> Option<Self> {
        let matchers = match &pause.matchers {
            Some(text) => parse_scope(text).ok()?,
            None => Vec::new(),
        };
        Some(Self { pause, matchers })
    }

    /// Its `pause_started`; `shared_from` names the replica it was made on
    /// when that is another.
    pub fn event(&self, shared_from: Option<String>) -> PauseStarted {
        PauseStarted {
            by: self.pause.by.clone(),
            by_comment: self.pause.by_comment.clone(),
            by_kind: self.pause.by_kind.clone(),
            by_name: self.pause.by_name.clone(),
            matchers: self.pause.matchers.clone(),
            plugin: self.pause.plugin.clone(),
            pause_id: self.pause.id.clone(),
            reason: self.pause.reason.clone(),
            shared_from,
            until: self.pause.until,
        }
    }
}

/// The matchers of a pause: Alertmanager's syntax, evaluated here, so
/// only `=` and `!=` (a regex needs an engine the host does not carry).
fn parse_scope(text: &str) -> Result<Vec<Matcher>, PauseError> {
    let matchers = parse_matchers(text).map_err(|e| {
        let why = match e {
            MatcherError::NoEqualityMatcher => {
                "a pause needs at least one equality matcher (name=\"value\") with a value; != only narrows it"
                    .to_owned()
            }
            other => other.to_string(),
        };
        PauseError::Matchers(text.to_owned(), why)
    })?;
    if let Some(regex) = matchers.iter().find(|m| m.is_regex) {
        return Err(PauseError::Matchers(
            text.to_owned(),
            format!("{regex}: a pause matches labels exactly (= and !=), not by regular expression"),
        ));
    }
    Ok(matchers)
}

/// Whether `labels` satisfy every matcher (a missing label is empty, as in Alertmanager).
fn matches(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    matchers.iter().all(|m| {
        let value = labels.get(&m.name).map(String::as_str).unwrap_or("");
        (value == m.value) == m.is_equal
    })
}

impl Pauses {
    /// The pauses remembered from the trail (all still active), not yet
    /// known to the cluster.
    pub fn new(remembered: Vec<Pause>) -> Self {
        let pauses = Self::default();
        for pause in remembered.into_iter().filter_map(NewPause::from_pause) {
            let _ = pauses.start(pause, false);
        }
        pauses
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `new`; `shared` when it came from the cluster.
    pub fn start(&self, new: NewPause, shared: bool) -> Result<(), PauseError> {
        let mut state = self.state();
        if state.active.len() >= MAX_ACTIVE_PAUSES {
            return Err(PauseError::TooMany);
        }
        let NewPause { pause, matchers } = new;
        let shared = shared.then_some(state.listing);
        state.active.insert(
            pause.id.clone(),
            Active {
                pause,
                matchers,
                shared,
            },
        );
        Ok(())
    }

    /// Whether `id` is active, or ended a moment ago (not to be taken up again).
    pub fn knows(&self, id: &str) -> bool {
        let state = self.state();
        state.active.contains_key(id) || state.ended.contains_key(id)
    }

    /// The active pauses at `now`, the soonest to end first.
    pub fn active(&self, now: f64) -> Vec<Pause> {
        let mut pauses: Vec<Pause> = self
            .state()
            .active
            .values()
            .filter(|a| a.pause.until > now)
            .map(|a| a.pause.clone())
            .collect();
        pauses.sort_by(|a, b| a.until.total_cmp(&b.until).then_with(|| a.id.cmp(&b.id)));
        pauses
    }

    /// The pause that covers `plugin` acting on `alert` at `now`: the one
    /// that ends last, if several do.
    pub fn covering(&self, plugin: &str, alert: &Alert, now: f64) -> Option<PausedBy> {
        self.state()
            .active
            .values()
            .filter(|a| a.pause.until > now)
            .filter(|a| a.pause.plugin.as_deref().is_none_or(|p| p == plugin))
            .filter(|a| matches(&a.matchers, &alert.labels))
            .max_by(|a, b| a.pause.until.total_cmp(&b.pause.until))
            .map(|a| PausedBy {
                id: a.pause.id.clone(),
                reason: a.pause.reason.clone(),
                until: a.pause.until,
            })
    }

    /// `verdict`, or a `paused` skip when it would act under an active pause.
    pub fn unless_paused(&self, verdict: Verdict, alert: &Alert, now: f64) -> Verdict {
        let Verdict::Act { plugin, .. } = &verdict else {
            return verdict;
        };
        let name = &plugin.manifest.name;
        match self.covering(name, alert, now) {
            None => verdict,
            Some(paused) => Verdict::Skip {
                repeat_cap: None,
                reason: SkipReason::Paused,
                detail: format!(
                    "{name} is paused until {} by pause {}: {}",
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(paused.until.max(0.0))
                    ),
                    paused.id,
                    paused.reason
                ),
                plugin: Some(name.clone()),
                remaining_sec: None,
                budget: None,
                paused: Some(paused),
            },
        }
    }

    /// Ends the active pause `id`, resumed by `actor`; its `pause_ended`.
    /// `from_cluster`: the cluster already knows (another replica resumed).
    pub fn resume(
        &self,
        id: &str,
        actor: ActedBy,
        from_cluster: bool,
    ) -> Result<(Pause, PauseEnded), PauseError> {
        let by = actor.by.clone();
        let mut state = self.state();
        let active = state
            .active
            .remove(id)
            .ok_or_else(|| PauseError::Unknown(id.to_owned()))?;
        let resumed = (!from_cluster).then(|| by.clone());
        state.ended.insert(
            id.to_owned(),
            Ended {
                until: active.pause.until,
                resumed,
            },
        );
        let ended = PauseEnded {
            by: actor.by,
            by_comment: actor.by_comment,
            by_kind: actor.by_kind,
            by_name: actor.by_name,
            pause_id: id.to_owned(),
            why: PauseEndReason::Resumed,
        };
        Ok((active.pause, ended))
    }

    /// Puts back a pause whose resume could not be recorded.
    pub fn restore(&self, pause: Pause) {
        let mut state = self.state();
        state.ended.remove(&pause.id);
        if let Some(new) = NewPause::from_pause(pause) {
            let NewPause { pause, matchers } = new;
            state.active.insert(
                pause.id.clone(),
                Active {
                    pause,
                    matchers,
                    // Published again if the cluster does not have it.
                    shared: None,
                },
            );
        }
    }

    /// Ends the pauses whose time is up at `now`; their `pause_ended`.
    pub fn expire(&self, now: f64) -> Vec<PauseEnded> {
        let mut state = self.state();
        state.ended.retain(|_, ended| ended.until + ENDED_KEPT_SEC > now);
        let due: Vec<String> = state
            .active
            .iter()
            .filter(|(_, a)| a.pause.until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        due.into_iter()
            .filter_map(|id| {
                let active = state.active.remove(&id)?;
                state.ended.insert(
                    id.clone(),
                    Ended {
                        until: active.pause.until,
                        resumed: None,
                    },
                );
                Some(PauseEnded {
                    by: None,
                    by_comment: None,
                    by_kind: None,
                    by_name: None,
                    pause_id: id,
                    why: PauseEndReason::Expired,
                })
            })
            .collect()
    }

    /// The active pauses the cluster does not have yet.
    pub fn unshared(&self) -> Vec<Pause> {
        self.state()
            .active
            .values()
            .filter(|a| a.shared.is_none())
            .map(|a| a.pause.clone())
            .collect()
    }

    /// Notes that the cluster has pause `id` (published or read).
    pub fn mark_shared(&self, id: &str) {
        let mut state = self.state();
        let listing = state.listing;
        if let Some(active) = state.active.get_mut(id)
            && active.shared.is_none()
        {
            active.shared = Some(listing);
        }
    }

    /// Called before the cluster's pauses are listed; its answer goes to
    /// [`Pauses::shared_but_gone`], which then judges only the pauses the
    /// cluster had before this listing began (one published meanwhile is
    /// not in the list, and is not gone).
    pub fn begin_listing(&self) -> u64 {
        let mut state = self.state();
        state.listing += 1;
        state.listing
    }

    /// Whether this replica resumed `id`; if so, by whom (to tell the cluster).
    pub fn resumed_here(&self, id: &str) -> Option<Option<String>> {
        self.state().ended.get(id).and_then(|e| e.resumed.clone())
    }

    /// Active pauses that the cluster had before `listing` began and does
    /// not list (`listed`), before their end: removed from etcd by hand, or lost.
    pub fn shared_but_gone(&self, listing: u64, listed: &[String], now: f64) -> Vec<String> {
        self.state()
            .active
            .values()
            .filter(|a| a.shared.is_some_and(|since| since < listing))
            .filter(|a| a.pause.until > now + 1.0 && !listed.contains(&a.pause.id))
            .map(|a| a.pause.id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(plugin: Option<&str>, matchers: Option<&str>, duration: &str) -> PauseRequest {
        PauseRequest {
            plugin: plugin.map(str::to_owned),
            matchers: matchers.map(str::to_owned),
            duration: duration.to_owned(),
            reason: "release 4.2".into(),
            by: Some("alice".into()),
        }
    }

    fn alert(labels: &[(&str, &str)]) -> Alert {
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect();
        serde_json::from_value(serde_json::json!({"status": "firing", "labels": labels})).unwrap()
    }

    #[test]
    fn a_pause_covers_its_plugin_and_the_alerts_its_matchers_match() {
        let pauses = Pauses::default();
        let new = NewPause::from_request(
            request(Some("restart-crm"), Some(r#"service="crm", instance!="b""#), "2h"),
            "p1".into(),
            None,
            1000.0,
        )
        .unwrap();
        assert_eq!(new.pause.until, 1000.0 + 7200.0);
        pauses.start(new, false).unwrap();
        let crm = alert(&[("service", "crm"), ("instance", "a")]);
        assert_eq!(pauses.covering("restart-crm", &crm, 1001.0).unwrap().id, "p1");
        assert!(pauses.covering("restart-other", &crm, 1001.0).is_none());
        assert!(
            pauses
                .covering(
                    "restart-crm",
                    &alert(&[("service", "crm"), ("instance", "b")]),
                    1001.0
                )
                .is_none()
        );
        assert!(
            pauses
                .covering("restart-crm", &alert(&[("service", "web")]), 1001.0)
                .is_none()
        );
        assert!(
            pauses.covering("restart-crm", &crm, 8200.0).is_none(),
            "over at its until"
        );
    }

    #[test]
    fn no_scope_pauses_everything_and_it_expires_by_itself() {
        let pauses = Pauses::default();
        let new = NewPause::from_request(request(None, None, "2s"), "p2".into(), None, 0.0).unwrap();
        pauses.start(new, false).unwrap();
        assert!(pauses.covering("any", &alert(&[("a", "b")]), 1.0).is_some());
        assert!(pauses.expire(1.0).is_empty());
        let ended = pauses.expire(2.0);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].why, PauseEndReason::Expired);
        assert!(pauses.active(2.0).is_empty());
        assert!(pauses.knows("p2"), "remembered a while, not taken up again");
    }

    #[test]
    fn requests_past_the_bounds_are_refused_clearly() {
        let refused = |r: PauseRequest| {
            NewPause::from_request(r, "p".into(), None, 0.0)
                .err()
                .unwrap()
                .to_string()
        };
        assert!(refused(request(None, None, "8d")).contains("at most 7 days"));
        assert!(refused(request(None, None, "0s")).contains("more than 0"));
        assert!(
            refused(request(None, Some(r#"service="crm", instance=~"a.*""#), "1h"))
                .contains("not by regular expression")
        );
        assert!(
            refused(request(None, Some(r#"service!="crm""#), "1h")).contains("at least one equality matcher")
        );
        assert!(
            refused(PauseRequest {
                reason: "  ".into(),
                ..request(None, None, "1h")
            })
            .contains("needs a reason")
        );
    }

    #[test]
    fn a_resume_ends_it_and_says_who() {
        let pauses = Pauses::default();
        let new = NewPause::from_request(request(None, None, "1h"), "p3".into(), None, 0.0).unwrap();
        pauses.start(new, true).unwrap();
        let (pause, ended) = pauses
            .resume("p3", ActedBy::id(Some("bob".into())), false)
            .unwrap();
        assert_eq!(pause.id, "p3");
        assert_eq!(
            (ended.why, ended.by.as_deref()),
            (PauseEndReason::Resumed, Some("bob"))
        );
        assert_eq!(pauses.resumed_here("p3"), Some(Some("bob".into())));
        assert!(matches!(
            pauses.resume("p3", ActedBy::default(), false),
            Err(PauseError::Unknown(_))
        ));
    }

    #[test]
    fn only_a_pause_the_cluster_had_before_a_listing_can_be_gone_from_it() {
        let pauses = Pauses::default();
        let start = |id: &str| {
            let new = NewPause::from_request(request(None, None, "1h"), id.into(), None, 0.0).unwrap();
            pauses.start(new, false).unwrap();
        };
        start("old");
        pauses.mark_shared("old");
        let listing = pauses.begin_listing();
        // Published while the listing was under way: not in its answer.
        start("new");
        pauses.mark_shared("new");
        assert_eq!(pauses.shared_but_gone(listing, &[], 10.0), vec!["old".to_owned()]);
        assert!(pauses.shared_but_gone(listing, &["old".into()], 10.0).is_empty());
        assert!(pauses.unshared().is_empty());
    }
}
