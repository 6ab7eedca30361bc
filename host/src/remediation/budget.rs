//! Blast-radius budgets (`[budget]`): how many real actions may start per
//! window across all plugins, run at once, and run at once for one value of
//! a label (one restart per `service` at a time). A real action past one is
//! not started: its alert is skipped with `reason: budget` naming which.
//! Dry-run actions touch nothing and are neither counted nor bounded.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use autoheal_core::alert::Alert;
use autoheal_core::event::Budget;

use crate::config::Budgets as BudgetConfig;

/// The budgets and what has been spent of them.
pub struct Budgets {
    config: BudgetConfig,
    spent: Mutex<Spent>,
}

#[derive(Default)]
struct Spent {
    /// When each real action of the window started, oldest first.
    started: VecDeque<f64>,
    in_flight: u32,
    per_label_value: HashMap<String, u32>,
}

/// One real action's share of the budgets; dropping it (when the action
/// is done) gives back its place in flight. Its start stays in the window.
pub struct BudgetTicket {
    budgets: Arc<Budgets>,
    label_value: Option<String>,
    /// When it was counted in the `max_actions` window (if that is set).
    started: Option<f64>,
}

/// Which budget is spent, and a sentence that says so.
#[derive(Debug, Clone, PartialEq)]
pub struct Exhausted {
    /// The budget.
    pub budget: Budget,
    /// For people.
    pub detail: String,
}

impl Budgets {
    /// No action spent yet.
    pub fn new(config: BudgetConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            spent: Mutex::default(),
        })
    }

    /// Where the window that ends at `now` begins, if `max_actions` is set
    /// (the only budget a restart must remember: the others are actions
    /// in flight, which the restart ended).
    pub fn window_start(&self, now: f64) -> Option<f64> {
        self.config
            .max_actions
            .map(|_| now - self.config.window.as_secs_f64())
    }

    /// Counts a real action the trail says started at `ts`; called newest
    /// first, as the trail is read back at start.
    pub fn restore_start(&self, ts: f64) {
        self.lock().started.push_front(ts);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Spent> {
        self.spent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A share of every budget for one more real action on `alert` at
    /// `now`, or the first budget that has none left.
    pub fn try_take(self: &Arc<Self>, alert: &Alert, now: f64) -> Result<BudgetTicket, Exhausted> {
        let config = &self.config;
        let mut spent = self.lock();
        if let Some(max) = config.max_actions {
            let horizon = now - config.window.as_secs_f64();
            while spent.started.front().is_some_and(|&ts| ts < horizon) {
                spent.started.pop_front();
            }
            if spent.started.len() >= max as usize {
                return Err(Exhausted {
                    budget: Budget::MaxActions,
                    detail: format!(
                        "{} real actions started in the last {} (budget.max_actions = {max})",
                        spent.started.len(),
                        humantime::format_duration(config.window)
                    ),
                });
            }
        }
        if let Some(max) = config.max_in_flight
            && spent.in_flight >= max
        {
            return Err(Exhausted {
                budget: Budget::MaxInFlight,
                detail: format!(
                    "{} real actions are running (budget.max_in_flight = {max})",
                    spent.in_flight
                ),
            });
        }
        let label_value = match &config.per_label {
            Some((label, max)) => match alert.labels.get(label) {
                Some(value) => {
                    let running = spent.per_label_value.get(value).copied().unwrap_or(0);
                    if running >= *max {
                        return Err(Exhausted {
                            budget: Budget::MaxInFlightPerLabel,
                            detail: format!(
                                "{running} real actions are running for {label}={value:?} (budget.max_in_flight_per_label = {max})"
                            ),
                        });
                    }
                    Some(value.clone())
                }
                None => None,
            },
            None => None,
        };
        let started = config.max_actions.map(|_| {
            spent.started.push_back(now);
            now
        });
        spent.in_flight += 1;
        if let Some(value) = &label_value {
            *spent.per_label_value.entry(value.clone()).or_default() += 1;
        }
        Ok(BudgetTicket {
            budgets: self.clone(),
            label_value,
            started,
        })
    }
}

/// What `GET /` says of the budgets: the API's type.
pub use autoheal_api::status::BudgetReport;

impl Budgets {
    /// The budgets and what is spent of them at `now`.
    pub fn report(&self, now: f64) -> BudgetReport {
        let config = &self.config;
        let spent = self.lock();
        let horizon = now - config.window.as_secs_f64();
        BudgetReport {
            max_actions: config.max_actions,
            window_sec: config.window.as_secs(),
            started_in_window: spent.started.iter().filter(|&&ts| ts >= horizon).count(),
            max_in_flight: config.max_in_flight,
            in_flight: spent.in_flight,
            per_label: config.per_label.as_ref().map(|(label, _)| label.clone()),
            max_in_flight_per_label: config.per_label.as_ref().map(|(_, max)| *max),
            in_flight_per_label: spent.per_label_value.clone(),
        }
    }
}

impl BudgetTicket {
    /// The action changed nothing (its plugin skipped): its start leaves the
    /// `max_actions` window, as if it had never started; its place in
    /// flight is given back as the ticket drops.
    pub fn refund(mut self) {
        if let Some(ts) = self.started.take() {
            let mut spent = self.budgets.lock();
            // Starts are kept oldest first; this one is among the newest.
            if let Some(at) = spent.started.iter().rposition(|&t| t == ts) {
                spent.started.remove(at);
            }
        }
    }
}

impl Drop for BudgetTicket {
    fn drop(&mut self) {
        let mut spent = self.budgets.lock();
        spent.in_flight -= 1;
        if let Some(value) = &self.label_value
            && let Some(running) = spent.per_label_value.get_mut(value)
        {
            *running -= 1;
            if *running == 0 {
                spent.per_label_value.remove(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn alert(service: &str) -> Alert {
        serde_json::from_value(serde_json::json!({
            "status": "firing",
            "labels": {"alertname": "Down", "service": service},
        }))
        .unwrap()
    }

    #[test]
    fn each_budget_refuses_by_name_and_places_come_back() {
        let budgets = Budgets::new(BudgetConfig {
            max_actions: Some(3),
            window: Duration::from_secs(60),
            max_in_flight: Some(2),
            per_label: Some(("service".into(), 1)),
        });
        let crm = budgets.try_take(&alert("crm"), 0.0).unwrap();
        let refused = budgets.try_take(&alert("crm"), 1.0).err().unwrap();
        assert_eq!(refused.budget, Budget::MaxInFlightPerLabel);
        assert!(refused.detail.contains("service=\"crm\""), "{}", refused.detail);
        let _web = budgets.try_take(&alert("web"), 2.0).unwrap();
        let refused = budgets.try_take(&alert("db"), 3.0).err().unwrap();
        assert_eq!(refused.budget, Budget::MaxInFlight);
        drop(crm);
        let _crm = budgets.try_take(&alert("crm"), 4.0).unwrap();
        let report = budgets.report(4.0);
        assert_eq!((report.started_in_window, report.in_flight), (3, 2));
        assert_eq!(report.in_flight_per_label.get("crm"), Some(&1));
        // Three started within the minute: the window is spent, whatever runs.
        let refused = budgets.try_take(&alert("other"), 5.0).err().unwrap();
        assert_eq!(refused.budget, Budget::MaxActions);
        assert!(refused.detail.contains("3 real actions"), "{}", refused.detail);
    }

    #[test]
    fn a_refunded_start_leaves_the_window_and_its_place() {
        let budgets = Budgets::new(BudgetConfig {
            max_actions: Some(1),
            window: Duration::from_secs(60),
            max_in_flight: Some(1),
            per_label: None,
        });
        let skipped = budgets.try_take(&alert("crm"), 0.0).unwrap();
        assert!(budgets.try_take(&alert("crm"), 1.0).is_err());
        skipped.refund();
        let report = budgets.report(2.0);
        assert_eq!((report.started_in_window, report.in_flight), (0, 0));
        let acted = budgets.try_take(&alert("crm"), 2.0).unwrap();
        drop(acted);
        // A start that was not refunded stays in the window.
        assert_eq!(
            budgets.try_take(&alert("crm"), 3.0).err().unwrap().budget,
            Budget::MaxActions
        );
    }

    #[test]
    fn the_window_slides_and_an_alert_without_the_label_is_not_bound_by_it() {
        let budgets = Budgets::new(BudgetConfig {
            max_actions: Some(2),
            window: Duration::from_secs(60),
            max_in_flight: None,
            per_label: Some(("team".into(), 1)),
        });
        drop(budgets.try_take(&alert("a"), 0.0).unwrap());
        drop(budgets.try_take(&alert("a"), 10.0).unwrap());
        assert!(budgets.try_take(&alert("a"), 59.0).is_err());
        // The first start left the window at 60 s.
        let _third = budgets.try_take(&alert("a"), 60.5).unwrap();
        assert!(budgets.try_take(&alert("a"), 69.0).is_err());
    }
}
