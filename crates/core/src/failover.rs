//! The members of a highly available group — an Alertmanager HA cluster —
//! and how a client reaches it: [`Members::first`] asks them in turn until
//! one answers (as `amtool` does with several `--alertmanager.url`), and
//! [`Members::every`] asks all of them at once (as Prometheus posts alerts
//! to every member, which Alertmanager's own guidance asks of clients).
//!
//! What counts as "no answer" is the caller's: its error type says, through
//! [`Failure::try_next`], whether another member may do better (no
//! connection, a timeout, a 5xx) or whether the member answered and the
//! answer stands (a 4xx: the same request is refused everywhere, and a
//! silence must not be created twice). No HTTP here: the callers bring it.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a member that did not answer is asked after the others: long
/// enough that a member that is down costs one timeout per minute, not one
/// per request; short enough that it takes its turn again soon after it is back.
pub const RECENT_FAILURE: Duration = Duration::from_secs(60);

/// An error of one member's request: whether the next member is worth asking.
pub trait Failure {
    /// True when the member gave no answer (no connection, a timeout, a
    /// server error); false when it answered and refused (a 4xx), which
    /// another member would refuse too.
    fn try_next(&self) -> bool;
}

/// A list of members that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembersError {
    /// No member at all.
    #[error("the list is empty: give at least one URL")]
    Empty,
}

/// The members, in the order configured, and when each last failed.
/// Clones share what they learn of failures.
#[derive(Clone)]
pub struct Members {
    urls: Arc<[String]>,
    /// Per member, when its last request failed (`None`: it answered, or was never asked).
    failed_at: Arc<Mutex<Vec<Option<Instant>>>>,
}

impl std::fmt::Debug for Members {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.urls.iter()).finish()
    }
}

impl Members {
    /// The members at `urls`, asked in this order while all answer.
    pub fn new(urls: Vec<String>) -> Result<Self, MembersError> {
        if urls.is_empty() {
            return Err(MembersError::Empty);
        }
        Ok(Self {
            failed_at: Arc::new(Mutex::new(vec![None; urls.len()])),
            urls: urls.into(),
        })
    }

    /// Every member's URL, in the order configured.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The URL of the first member configured.
    pub fn primary(&self) -> &str {
        &self.urls[0]
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, Vec<Option<Instant>>> {
        self.failed_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The order to ask them in at `now`: the configured order, except that
    /// members that failed within [`RECENT_FAILURE`] come last (in the
    /// configured order among themselves), so that a member that is down
    /// does not cost every request its timeout.
    pub fn order_at(&self, now: Instant) -> Vec<usize> {
        let failed = self.failures();
        let recent =
            |i: usize| failed[i].is_some_and(|at| now.saturating_duration_since(at) < RECENT_FAILURE);
        let mut order: Vec<usize> = (0..self.urls.len()).collect();
        // Stable: the configured order holds within each half.
        order.sort_by_key(|&i| recent(i));
        order
    }

    /// Records how member `index`'s request went at `now`.
    pub fn note_at(&self, index: usize, answered: bool, now: Instant) {
        if let Some(slot) = self.failures().get_mut(index) {
            *slot = (!answered).then_some(now);
        }
    }

    /// Asks the members in turn ([`Members::order_at`]) until one answers:
    /// its success, or its refusal ([`Failure::try_next`] false), is the
    /// result. When none answers, the last member's error.
    pub async fn first<T, E, F, Fut>(&self, mut ask: F) -> Result<T, E>
    where
        E: Failure + std::fmt::Display,
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let order = self.order_at(Instant::now());
        let mut last = None;
        for index in order {
            let url = self.urls[index].clone();
            match ask(url).await {
                Ok(value) => {
                    self.note_at(index, true, Instant::now());
                    return Ok(value);
                }
                Err(e) if !e.try_next() => {
                    // It answered: reachable, and its answer stands.
                    self.note_at(index, true, Instant::now());
                    return Err(e);
                }
                Err(e) => {
                    self.note_at(index, false, Instant::now());
                    tracing::debug!(member = %self.urls[index], error = %e, "no answer; asking the next member");
                    last = Some(e);
                }
            }
        }
        // `new` refuses an empty list, so at least one member was asked.
        Err(last.expect("a member was asked"))
    }

    /// Asks every member at once; each member's URL with its result, in the
    /// configured order.
    pub async fn every<T, E, F, Fut>(&self, mut ask: F) -> Vec<(String, Result<T, E>)>
    where
        E: Failure,
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let asked = self.urls.iter().map(|url| ask(url.clone()));
        let results = futures_util::future::join_all(asked).await;
        let now = Instant::now();
        self.urls
            .iter()
            .cloned()
            .zip(results)
            .enumerate()
            .map(|(index, (url, result))| {
                self.note_at(
                    index,
                    result.as_ref().map_or_else(|e| !e.try_next(), |_| true),
                    now,
                );
                (url, result)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A member's error: `Down` moves on, `Refused` is an answer.
    #[derive(Debug, PartialEq)]
    enum Fail {
        Down(String),
        Refused(String),
    }

    impl Failure for Fail {
        fn try_next(&self) -> bool {
            matches!(self, Fail::Down(_))
        }
    }

    impl std::fmt::Display for Fail {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }

    fn members(urls: &[&str]) -> Members {
        Members::new(urls.iter().map(|u| (*u).to_owned()).collect()).unwrap()
    }

    /// Runs a future that never waits (the asks below are ready at once).
    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn an_empty_list_is_refused() {
        assert_eq!(Members::new(Vec::new()).unwrap_err(), MembersError::Empty);
    }

    #[test]
    fn the_first_that_answers_wins_and_the_others_are_not_asked() {
        let am = members(&["http://a", "http://b", "http://c"]);
        let asked = RefCell::new(Vec::new());
        let result = block_on(am.first(|url| {
            asked.borrow_mut().push(url.clone());
            async move {
                match url.as_str() {
                    "http://a" => Err(Fail::Down(url)),
                    _ => Ok(url),
                }
            }
        }));
        assert_eq!(result, Ok("http://b".to_owned()));
        assert_eq!(*asked.borrow(), ["http://a", "http://b"]);
    }

    #[test]
    fn a_refusal_is_an_answer_and_is_not_asked_elsewhere() {
        let am = members(&["http://a", "http://b"]);
        let asked = RefCell::new(0);
        let result: Result<(), Fail> = block_on(am.first(|url| {
            *asked.borrow_mut() += 1;
            async move { Err(Fail::Refused(url)) }
        }));
        assert_eq!(result, Err(Fail::Refused("http://a".into())));
        assert_eq!(*asked.borrow(), 1);
        // It answered: not moved to the back.
        assert_eq!(am.order_at(Instant::now()), [0, 1]);
    }

    #[test]
    fn when_none_answers_the_last_error_is_returned() {
        let am = members(&["http://a", "http://b"]);
        let result: Result<(), Fail> = block_on(am.first(|url| async move { Err(Fail::Down(url)) }));
        assert_eq!(result, Err(Fail::Down("http://b".into())));
    }

    #[test]
    fn a_member_that_failed_recently_is_asked_last_until_the_window_passes() {
        let am = members(&["http://a", "http://b", "http://c"]);
        let t0 = Instant::now();
        assert_eq!(am.order_at(t0), [0, 1, 2]);
        am.note_at(0, false, t0);
        am.note_at(1, false, t0);
        assert_eq!(
            am.order_at(t0),
            [2, 0, 1],
            "failed ones last, in configured order"
        );
        assert_eq!(
            am.order_at(t0 + RECENT_FAILURE - Duration::from_secs(1)),
            [2, 0, 1]
        );
        assert_eq!(
            am.order_at(t0 + RECENT_FAILURE),
            [0, 1, 2],
            "forgiven after the window"
        );
        am.note_at(0, true, t0);
        assert_eq!(am.order_at(t0), [0, 2, 1], "an answer puts it back in its place");
    }

    #[test]
    fn a_failure_seen_by_first_reorders_the_next_request() {
        let am = members(&["http://a", "http://b"]);
        let _: Result<String, Fail> = block_on(am.first(|url| async move {
            if url == "http://a" {
                Err(Fail::Down(url))
            } else {
                Ok(url)
            }
        }));
        let asked = RefCell::new(Vec::new());
        let shared = am.clone();
        let _: Result<String, Fail> = block_on(shared.first(|url| {
            asked.borrow_mut().push(url.clone());
            async move { Ok(url) }
        }));
        assert_eq!(*asked.borrow(), ["http://b"], "clones share what they learned");
    }

    #[test]
    fn every_asks_all_and_keeps_the_configured_order() {
        let am = members(&["http://a", "http://b"]);
        let results = block_on(am.every(|url| async move {
            if url == "http://a" {
                Err(Fail::Down(url))
            } else {
                Ok(())
            }
        }));
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].0, "http://a");
        assert!(results[0].1.is_err());
        assert_eq!(results[1], ("http://b".to_owned(), Ok(())));
        assert_eq!(am.order_at(Instant::now()), [1, 0]);
    }
}
