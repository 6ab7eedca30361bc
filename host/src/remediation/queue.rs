//! The actions admitted and not yet done, and the places they run in.
//!
//! An admitted action takes a place among the pending ones (at most
//! `max_pending_actions`, queued or running: past that its alert is
//! `overloaded` and the webhook answered 503, so that Alertmanager retries).
//! It runs at once if its plugin has fewer than `limits.max_concurrent`
//! actions running and, for a real action, the `[budget]` has room in flight;
//! otherwise it waits in the queue and runs when a place frees, in arrival
//! order — a storm is remediated, not dropped. A waiting action is given its
//! turn by the place that frees ([`Running`]'s drop), or leaves the queue when
//! its alert resolves or the host stops.
//!
//! The `[budget] max_actions` window is not a place that frees: an action
//! that finds it spent is skipped (`budget`), when admitted or when its turn
//! comes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use autoheal_core::alert::Alert;
use autoheal_core::event::Budget;
use autoheal_core::util::unix_now;

use super::budget::{BudgetTicket, Budgets, Exhausted};

/// The pending actions: how many, which run, which wait.
pub struct ActionQueue {
    max_pending: usize,
    budgets: Arc<Budgets>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Actions admitted and not done: queued or running.
    pending: usize,
    /// Actions running, by plugin.
    running: HashMap<String, usize>,
    /// Actions waiting, in arrival order.
    waiting: VecDeque<Waiter>,
    next_id: u64,
}

struct Waiter {
    id: u64,
    plugin: String,
    max_running: usize,
    fingerprint: String,
    /// For a real action, the alert its share of the budgets is taken for.
    real: Option<Arc<Alert>>,
    turn: oneshot::Sender<TurnEnded>,
    queued_at: f64,
}

/// One admitted action's place among the pending ones; dropping it (when
/// the action is done, or dropped) frees it.
pub struct Place {
    queue: Arc<ActionQueue>,
}

/// A place to run: one of the plugin's `max_concurrent` and, for a real
/// action, its share of the budgets. Dropping it gives the place to the
/// next action waiting for it.
pub struct Running {
    queue: Arc<ActionQueue>,
    plugin: String,
    budget: Option<BudgetTicket>,
}

/// A queued action's ticket: awaiting it gives its turn.
pub struct Waiting {
    id: u64,
    queue: Arc<ActionQueue>,
    turn: Option<oneshot::Receiver<TurnEnded>>,
    /// Actions waiting ahead of it when it was queued.
    pub ahead: usize,
    /// Unix time it was queued.
    pub queued_at: f64,
    /// What it waits for, in words.
    pub waiting_for: String,
}

/// How a wait ended.
pub enum TurnEnded {
    /// Its turn: it runs now.
    Run(Running),
    /// The `[budget] max_actions` window was spent by the time its turn came.
    BudgetSpent(Exhausted),
    /// Its alert resolved while it waited.
    Resolved,
    /// The host is stopping: it did not run (the next start decides it afresh).
    Closed,
}

/// When an admitted action runs.
pub enum Turn {
    /// At once.
    Now(Running),
    /// Once a place frees.
    Queued(Waiting),
}

/// Why an action was not admitted.
#[derive(Debug, Clone, PartialEq)]
pub enum NotEntered {
    /// `max_pending_actions` (the bound) actions are pending already.
    Full(usize),
    /// The `[budget] max_actions` window is spent.
    BudgetSpent(Exhausted),
}

impl ActionQueue {
    /// At most `max_pending` actions queued or running at once, real ones
    /// within `budgets`.
    pub fn new(max_pending: usize, budgets: Arc<Budgets>) -> Arc<Self> {
        Arc::new(Self {
            max_pending,
            budgets,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits one more action of `plugin` (which may run `max_running` at
    /// once) on the alert `fingerprint`; `real` is the alert of a real
    /// action, which also needs its share of the budgets. The place is
    /// held until the action is done.
    pub fn enter(
        self: &Arc<Self>,
        plugin: &str,
        max_running: usize,
        fingerprint: &str,
        real: Option<&Arc<Alert>>,
    ) -> Result<(Place, Turn), NotEntered> {
        let mut state = self.lock();
        if state.pending >= self.max_pending {
            return Err(NotEntered::Full(self.max_pending));
        }
        let running = state.running.get(plugin).copied().unwrap_or(0);
        let turn = if running < max_running {
            match self.take_budget(real) {
                Ok(budget) => {
                    *state.running.entry(plugin.to_owned()).or_default() += 1;
                    Turn::Now(self.running(plugin, budget))
                }
                Err(spent) if spent.budget == Budget::MaxActions => {
                    return Err(NotEntered::BudgetSpent(spent));
                }
                // Actions in flight are at their bound: wait for one to end.
                Err(in_flight) => Turn::Queued(self.wait(
                    &mut state,
                    plugin,
                    max_running,
                    fingerprint,
                    real,
                    in_flight.detail,
                )),
            }
        } else {
            let why = format!("{plugin} has {running} actions running (its limits.max_concurrent)");
            Turn::Queued(self.wait(&mut state, plugin, max_running, fingerprint, real, why))
        };
        state.pending += 1;
        Ok((Place { queue: self.clone() }, turn))
    }

    fn take_budget(&self, real: Option<&Arc<Alert>>) -> Result<Option<BudgetTicket>, Exhausted> {
        match real {
            Some(alert) => self.budgets.try_take(alert, unix_now()).map(Some),
            None => Ok(None),
        }
    }

    fn running(self: &Arc<Self>, plugin: &str, budget: Option<BudgetTicket>) -> Running {
        Running {
            queue: self.clone(),
            plugin: plugin.to_owned(),
            budget,
        }
    }

    fn wait(
        self: &Arc<Self>,
        state: &mut State,
        plugin: &str,
        max_running: usize,
        fingerprint: &str,
        real: Option<&Arc<Alert>>,
        waiting_for: String,
    ) -> Waiting {
        let (sender, receiver) = oneshot::channel();
        state.next_id += 1;
        let id = state.next_id;
        let ahead = state.waiting.len();
        let queued_at = unix_now();
        state.waiting.push_back(Waiter {
            queued_at,
            id,
            plugin: plugin.to_owned(),
            max_running,
            fingerprint: fingerprint.to_owned(),
            real: real.cloned(),
            turn: sender,
        });
        Waiting {
            id,
            queue: self.clone(),
            turn: Some(receiver),
            ahead,
            queued_at,
            waiting_for,
        }
    }

    /// Gives their turn to the waiting actions that can run now, oldest
    /// first; one that cannot (its plugin, or the budget in flight, is at
    /// its bound) keeps its place and lets the ones behind it try.
    fn pump(self: &Arc<Self>) {
        // Turns that found nobody to take them are dropped once unlocked:
        // dropping a `Running` locks the queue again.
        let mut unclaimed = Vec::new();
        {
            let mut state = self.lock();
            let mut index = 0;
            while index < state.waiting.len() {
                let waiter = &state.waiting[index];
                let running = state.running.get(&waiter.plugin).copied().unwrap_or(0);
                if running >= waiter.max_running {
                    index += 1;
                    continue;
                }
                let ended = match self.take_budget(waiter.real.as_ref()) {
                    Ok(budget) => {
                        let plugin = waiter.plugin.clone();
                        *state.running.entry(plugin.clone()).or_default() += 1;
                        TurnEnded::Run(self.running(&plugin, budget))
                    }
                    Err(spent) if spent.budget == Budget::MaxActions => TurnEnded::BudgetSpent(spent),
                    Err(_) => {
                        index += 1;
                        continue;
                    }
                };
                let waiter = state.waiting.remove(index).expect("index is in the queue");
                if let Err(ended) = waiter.turn.send(ended) {
                    unclaimed.push(ended);
                }
            }
        }
        drop(unclaimed);
    }

    /// Takes the actions waiting on alert `fingerprint` out of the queue
    /// (it resolved); returns their plugins, and when each was queued.
    pub fn withdraw(&self, fingerprint: &str) -> Vec<(String, f64)> {
        let mut state = self.lock();
        let (gone, kept): (VecDeque<Waiter>, VecDeque<Waiter>) = std::mem::take(&mut state.waiting)
            .into_iter()
            .partition(|w| w.fingerprint == fingerprint);
        state.waiting = kept;
        drop(state);
        gone.into_iter()
            .map(|waiter| {
                let _ = waiter.turn.send(TurnEnded::Resolved);
                (waiter.plugin, waiter.queued_at)
            })
            .collect()
    }

    /// The host stops: every waiting action leaves the queue without running.
    pub fn close(&self) {
        let waiting = std::mem::take(&mut self.lock().waiting);
        for waiter in waiting {
            let _ = waiter.turn.send(TurnEnded::Closed);
        }
    }

    /// Actions waiting now.
    pub fn queued(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Actions pending now (queued or running).
    pub fn pending(&self) -> usize {
        self.lock().pending
    }

    /// The waiting action `id` now runs in dry-run: it needs no budget.
    fn no_budget_for(self: &Arc<Self>, id: u64) {
        if let Some(waiter) = self.lock().waiting.iter_mut().find(|w| w.id == id) {
            waiter.real = None;
        }
        self.pump();
    }

    fn leave(self: &Arc<Self>, id: u64) {
        self.lock().waiting.retain(|w| w.id != id);
    }
}

impl Waiting {
    /// Waits for its turn.
    pub async fn turn(mut self) -> TurnEnded {
        let receiver = self.turn.take().expect("a turn is awaited once");
        // A sender dropped without a word: the queue went with the host.
        receiver.await.unwrap_or(TurnEnded::Closed)
    }

    /// It will run in dry-run: it no longer waits for the budget in flight.
    pub fn release_budget(&self) {
        self.queue.no_budget_for(self.id);
    }
}

impl Drop for Waiting {
    /// A queued action dropped before its turn (its claim was lost, or its
    /// webhook could not be recorded) leaves the queue.
    fn drop(&mut self) {
        if self.turn.is_some() {
            self.queue.leave(self.id);
        }
    }
}

impl Running {
    /// The action runs in dry-run after all: it spends no budget.
    pub fn release_budget(&mut self) {
        if self.budget.take().is_some() {
            self.queue.pump();
        }
    }

    /// The plugin declined: the action changed nothing, so its start is
    /// taken out of the `max_actions` window too.
    pub fn refund_budget(&mut self) {
        if let Some(ticket) = self.budget.take() {
            ticket.refund();
            self.queue.pump();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // The budget's place first, so that the turns given below see it.
        drop(self.budget.take());
        {
            let mut state = self.queue.lock();
            if let Some(count) = state.running.get_mut(&self.plugin) {
                *count -= 1;
                if *count == 0 {
                    state.running.remove(&self.plugin);
                }
            }
        }
        self.queue.pump();
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.queue.lock().pending -= 1;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Budgets as BudgetConfig;

    fn queue(max_pending: usize, max_in_flight: Option<u32>, max_actions: Option<u32>) -> Arc<ActionQueue> {
        ActionQueue::new(
            max_pending,
            Budgets::new(BudgetConfig {
                max_actions,
                window: Duration::from_secs(3600),
                max_in_flight,
                per_label: None,
            }),
        )
    }

    fn alert(name: &str) -> Arc<Alert> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "status": "firing", "labels": {"alertname": name}, "fingerprint": name,
            }))
            .unwrap(),
        )
    }

    fn now(turn: Turn) -> Running {
        match turn {
            Turn::Now(running) => running,
            _ => panic!("expected to run at once"),
        }
    }

    fn queued(turn: Turn) -> Waiting {
        match turn {
            Turn::Queued(waiting) => waiting,
            _ => panic!("expected to wait"),
        }
    }

    #[tokio::test]
    async fn past_max_concurrent_actions_wait_and_run_in_arrival_order() {
        let queue = queue(10, None, None);
        let (_p1, first) = queue.enter("a", 1, "f1", None).unwrap();
        let first = now(first);
        let (_p2, second) = queue.enter("a", 1, "f2", None).unwrap();
        let (_p3, third) = queue.enter("a", 1, "f3", None).unwrap();
        let (second, third) = (queued(second), queued(third));
        assert_eq!((second.ahead, third.ahead), (0, 1));
        assert!(
            second.waiting_for.contains("max_concurrent"),
            "{}",
            second.waiting_for
        );
        // Another plugin is not held up behind them.
        let (_p4, other) = queue.enter("b", 1, "f4", None).unwrap();
        let _other = now(other);
        assert_eq!((queue.queued(), queue.pending()), (2, 4));

        drop(first);
        let TurnEnded::Run(second) = second.turn().await else {
            panic!("the second runs when the first is done")
        };
        assert_eq!(queue.queued(), 1);
        drop(second);
        assert!(matches!(third.turn().await, TurnEnded::Run(_)));
    }

    #[tokio::test]
    async fn the_pending_bound_refuses_and_places_come_back() {
        let queue = queue(2, None, None);
        let (p1, _r1) = queue.enter("a", 1, "f1", None).unwrap();
        let (_p2, _w2) = queue.enter("a", 1, "f2", None).unwrap();
        assert_eq!(queue.enter("a", 1, "f3", None).err(), Some(NotEntered::Full(2)));
        drop(p1);
        assert!(queue.enter("b", 1, "f3", None).is_ok());
    }

    #[tokio::test]
    async fn real_actions_wait_for_the_budget_in_flight_and_a_spent_window_skips() {
        let queue = queue(10, Some(1), Some(2));
        let (a, b, c) = (alert("a"), alert("b"), alert("c"));
        let (_p1, first) = queue.enter("x", 5, "a", Some(&a)).unwrap();
        let first = now(first);
        let (_p2, second) = queue.enter("y", 5, "b", Some(&b)).unwrap();
        let second = queued(second);
        assert!(
            second.waiting_for.contains("max_in_flight"),
            "{}",
            second.waiting_for
        );
        // A dry-run action needs no budget.
        let (_p3, dry) = queue.enter("y", 5, "d", None).unwrap();
        drop(now(dry));
        let (_p4, third) = queue.enter("z", 5, "c", Some(&c)).unwrap();
        let third = queued(third);
        drop(first);
        assert!(matches!(second.turn().await, TurnEnded::Run(_)));
        // Two real actions started in the window: the third finds it spent.
        assert!(matches!(third.turn().await, TurnEnded::BudgetSpent(_)));
        assert!(matches!(
            queue.enter("z", 5, "c", Some(&c)),
            Err(NotEntered::BudgetSpent(_))
        ));
    }

    #[tokio::test]
    async fn a_resolved_alert_leaves_the_queue_and_close_ends_every_wait() {
        let queue = queue(10, None, None);
        let (_p1, _running) = queue.enter("a", 1, "f1", None).unwrap();
        let (_p2, resolved) = queue.enter("a", 1, "f2", None).unwrap();
        let (_p3, stopped) = queue.enter("a", 1, "f3", None).unwrap();
        let withdrawn = queue.withdraw("f2");
        assert_eq!(withdrawn.len(), 1);
        assert_eq!(withdrawn[0].0, "a");
        assert!(matches!(queued(resolved).turn().await, TurnEnded::Resolved));
        queue.close();
        assert!(matches!(queued(stopped).turn().await, TurnEnded::Closed));
        assert_eq!(queue.queued(), 0);
    }

    #[tokio::test]
    async fn a_waiting_action_dropped_leaves_the_queue() {
        let queue = queue(10, None, None);
        let (_p1, running) = queue.enter("a", 1, "f1", None).unwrap();
        let (p2, gone) = queue.enter("a", 1, "f2", None).unwrap();
        let (_p3, next) = queue.enter("a", 1, "f3", None).unwrap();
        drop((p2, gone));
        assert_eq!((queue.queued(), queue.pending()), (1, 2));
        drop(running);
        assert!(matches!(queued(next).turn().await, TurnEnded::Run(_)));
    }
}
