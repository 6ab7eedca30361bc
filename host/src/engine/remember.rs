//! What the engine carries across a restart of the host, read back from the
//! audit trail at start in one backward scan: the cooldowns still running
//! and the real actions started in the budget's window.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use autoheal_core::audit::{line_has_kind, line_ts, scan_backwards};
use autoheal_core::event::{Event, EventBody};
use autoheal_core::mode::ExecutionMode;

use super::budget::Budgets;
use super::cooldown::Cooldowns;
use crate::config::Budgets as BudgetConfig;

/// The engine's state from before a restart.
pub struct Remembered {
    /// The cooldowns still running.
    pub cooldowns: Cooldowns,
    /// The budgets, with the real actions started in their window.
    pub budgets: Arc<Budgets>,
}

impl Remembered {
    /// Reads the trail from its end, each part as far back as it needs —
    /// the cooldowns `cooldown_horizon_sec` (the longest cooldown), the
    /// budgets their window — in one scan that stops at the farther.
    pub fn rebuild(
        audit_path: &Path,
        now: f64,
        cooldown_horizon_sec: f64,
        budget: BudgetConfig,
    ) -> std::io::Result<Self> {
        let mut cooldowns = Cooldowns::default();
        let budgets = Budgets::new(budget);
        let cooldown_since = now - cooldown_horizon_sec;
        let budget_since = budgets.window_start(now);
        // Whether each part still reads: once a line is older than its
        // horizon, so is everything before it.
        let (mut for_cooldowns, mut for_budgets) = (true, budget_since.is_some());
        scan_backwards(audit_path, |line| {
            if let Some(ts) = line_ts(line) {
                if ts < cooldown_since {
                    for_cooldowns = false;
                }
                if budget_since.is_some_and(|since| ts < since) {
                    for_budgets = false;
                }
            }
            if !for_cooldowns && !for_budgets {
                return ControlFlow::Break(());
            }
            // Only action_started is parsed: a long trail costs a scan, not a parse.
            if !line_has_kind(line, &["action_started"]) {
                return ControlFlow::Continue(());
            }
            if let Ok(event) = serde_json::from_slice::<Event>(line)
                && let EventBody::ActionStarted(started) = event.body
            {
                if for_budgets && started.mode == ExecutionMode::Real {
                    budgets.restore_start(event.ts);
                }
                if for_cooldowns {
                    cooldowns.restore(started, now);
                }
            }
            ControlFlow::Continue(())
        })?;
        Ok(Self { cooldowns, budgets })
    }
}
