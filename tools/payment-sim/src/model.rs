//! The payment model: attempts at a constant rate, a failure ratio that follows the mode.
//!
//! Nothing runs in the background. Every read (status, metrics) and every mode switch first
//! advances the counters to "now": `attempts += payments_per_sec × dt` and
//! `failures += payments_per_sec × ∫ failure_ratio(t) dt` over the elapsed interval. The ratio is
//! piecewise linear in time (a ramp, then a hold), so the integral is exact however rarely the
//! model is read, and the exported integer counters keep their fractional remainder internally:
//! over a long run `failure_total / (success_total + failure_total)` is the configured ratio.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What the simulated payment processor is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Failure ratio is the baseline, immediately (a reset, no ramp).
    Steady,
    /// Failure ratio ramps linearly from its current value to the dip ratio, then holds.
    Dip,
    /// Failure ratio ramps linearly from its current value back to the baseline, then holds.
    Recovery,
}

impl Mode {
    /// Every mode, in the order they are listed in messages and metrics.
    pub const ALL: [Mode; 3] = [Mode::Steady, Mode::Dip, Mode::Recovery];

    /// The name used on the command line, in URLs, in JSON and in the `mode` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Steady => "steady",
            Mode::Dip => "dip",
            Mode::Recovery => "recovery",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name that is not one of `steady`, `dip`, `recovery`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode {0:?}: valid modes are steady, dip, recovery")]
pub struct ParseModeError(pub String);

impl FromStr for Mode {
    type Err = ParseModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        Mode::ALL
            .into_iter()
            .find(|mode| mode.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| ParseModeError(s.to_owned()))
    }
}

/// The numbers behind the model.
///
/// With the payment-rate SLO objective of 99.5 % (error budget 0.5 %), the defaults burn the
/// budget at 0.2× (baseline 0.1 %) and 10× (dip 5 %).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Payment attempts per second, whatever the mode. Must be finite and > 0.
    pub payments_per_sec: f64,
    /// Failure ratio in `steady` mode and at the end of a `recovery`, in [0, 1].
    pub baseline_failure_ratio: f64,
    /// Failure ratio at the end of the `dip` ramp, in [0, 1].
    pub dip_failure_ratio: f64,
    /// How long `dip` and `recovery` take to move the failure ratio to their target (0 = at once).
    pub ramp: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            payments_per_sec: 20.0,
            baseline_failure_ratio: 0.001,
            dip_failure_ratio: 0.05,
            ramp: Duration::from_secs(60),
        }
    }
}

/// A [`Settings`] value the model cannot work with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("payment rate must be a finite number greater than 0 (per second), got {0}")]
    Rate(f64),
    #[error("{name} failure ratio must be between 0 and 1 (e.g. 0.05 for 5 %), got {value}")]
    Ratio { name: &'static str, value: f64 },
}

impl Settings {
    /// Checks the ranges documented on each field.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !(self.payments_per_sec.is_finite() && self.payments_per_sec > 0.0) {
            return Err(SettingsError::Rate(self.payments_per_sec));
        }
        for (name, value) in [
            ("baseline", self.baseline_failure_ratio),
            ("dip", self.dip_failure_ratio),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(SettingsError::Ratio { name, value });
            }
        }
        Ok(())
    }

    fn target(&self, mode: Mode) -> f64 {
        match mode {
            Mode::Steady | Mode::Recovery => self.baseline_failure_ratio,
            Mode::Dip => self.dip_failure_ratio,
        }
    }
}

/// A snapshot of the simulator, as served on `GET /` and `POST /mode/{mode}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub mode: Mode,
    /// The failure ratio right now (mid-ramp values included).
    pub failure_ratio: f64,
    /// Where the current mode's ramp ends (and then holds).
    pub target_failure_ratio: f64,
    pub payments_per_sec: f64,
    pub success_total: u64,
    pub failure_total: u64,
    /// When the current mode was entered, in Unix seconds.
    pub since: u64,
}

/// An integer counter that keeps the fractional part of what was added to it.
#[derive(Debug, Default, Clone, Copy)]
struct Counter {
    whole: u64,
    fraction: f64,
}

impl Counter {
    fn add(&mut self, amount: f64) {
        self.fraction += amount.max(0.0);
        let whole = self.fraction.floor();
        // Saturating float-to-int conversion; a u64 of payments is never reached in practice.
        self.whole = self.whole.saturating_add(whole as u64);
        self.fraction -= whole;
    }
}

#[derive(Debug)]
struct State {
    mode: Mode,
    /// When `mode` was entered: the ramp starts here.
    changed_at: Instant,
    ramp_from: f64,
    ramp_to: f64,
    /// The counters are up to date until this instant.
    last: Instant,
    success: Counter,
    failure: Counter,
}

/// The simulated payment processor. Shared between HTTP handlers behind an [`Arc`].
#[derive(Debug)]
pub struct Simulator {
    settings: Settings,
    /// The same moment on the monotonic and the wall clock, to report `since` in Unix seconds.
    origin: Instant,
    origin_unix: Duration,
    state: Mutex<State>,
}

impl Simulator {
    /// A simulator in `mode`, with both counters at 0 and the mode's target ratio in force
    /// (a simulator started in `dip` starts at the dip ratio, with no ramp).
    ///
    /// # Panics
    ///
    /// If `settings` fails [`Settings::validate`]; validate user input first.
    pub fn new(settings: Settings, mode: Mode) -> Arc<Simulator> {
        Arc::new(Simulator::new_at(
            settings,
            mode,
            Instant::now(),
            SystemTime::now(),
        ))
    }

    fn new_at(settings: Settings, mode: Mode, origin: Instant, origin_wall: SystemTime) -> Simulator {
        if let Err(e) = settings.validate() {
            panic!("invalid payment simulator settings: {e}");
        }
        let ratio = settings.target(mode);
        Simulator {
            origin,
            origin_unix: origin_wall.duration_since(UNIX_EPOCH).unwrap_or_default(),
            state: Mutex::new(State {
                mode,
                changed_at: origin,
                ramp_from: ratio,
                ramp_to: ratio,
                last: origin,
                success: Counter::default(),
                failure: Counter::default(),
            }),
            settings,
        }
    }

    /// The settings this simulator was created with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Switches to `mode`. The new ramp starts from the failure ratio in force right now, so
    /// switching mid-ramp never jumps (except `steady`, which is a reset to the baseline).
    /// Switching to the mode already in force changes nothing.
    pub fn set_mode(&self, mode: Mode) {
        self.with_now(|sim, state, now| sim.switch(state, mode, now));
    }

    /// Current mode, ratio and counters.
    pub fn status(&self) -> Status {
        self.with_now(|sim, state, now| sim.status_at(state, now))
    }

    /// The metrics in the Prometheus text exposition format, version 0.0.4.
    pub fn render_metrics(&self) -> String {
        self.with_now(|sim, state, now| sim.render_at(state, now))
    }

    /// Runs `f` under the lock with the current time, read under the lock so that the
    /// instants seen by successive calls never go backwards.
    fn with_now<R>(&self, f: impl FnOnce(&Self, &mut State, Instant) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        f(self, &mut state, now)
    }

    fn ramp_end(&self, state: &State) -> Instant {
        state.changed_at + self.settings.ramp
    }

    /// The failure ratio at `t` (`t` at or after the last mode change).
    fn ratio_at(&self, state: &State, t: Instant) -> f64 {
        let ramp = self.settings.ramp.as_secs_f64();
        let elapsed = t.saturating_duration_since(state.changed_at).as_secs_f64();
        if ramp <= 0.0 || elapsed >= ramp {
            state.ramp_to
        } else {
            state.ramp_from + (state.ramp_to - state.ramp_from) * (elapsed / ramp)
        }
    }

    /// Brings the counters up to `now`.
    fn advance(&self, state: &mut State, now: Instant) {
        if now <= state.last {
            return;
        }
        let start = state.last;
        // The ratio is linear up to the end of the ramp and constant after it: integrate the
        // two pieces exactly (trapezoid, then rectangle).
        let ramp_end = self.ramp_end(state).clamp(start, now);
        let ramping = (ramp_end - start).as_secs_f64();
        let holding = (now - ramp_end).as_secs_f64();
        let ratio_seconds = ramping * (self.ratio_at(state, start) + self.ratio_at(state, ramp_end)) / 2.0
            + holding * state.ramp_to;
        let rate = self.settings.payments_per_sec;
        let attempts = rate * (now - start).as_secs_f64();
        let failures = (rate * ratio_seconds).clamp(0.0, attempts);
        state.failure.add(failures);
        state.success.add(attempts - failures);
        state.last = now;
    }

    fn switch(&self, state: &mut State, mode: Mode, now: Instant) {
        self.advance(state, now);
        let old_mode = state.mode;
        let old_ratio = self.ratio_at(state, now);
        if mode == old_mode {
            tracing::info!(%mode, failure_ratio = old_ratio, "payment simulator already in this mode");
            return;
        }
        let target = self.settings.target(mode);
        state.mode = mode;
        state.changed_at = now;
        state.ramp_from = if mode == Mode::Steady { target } else { old_ratio };
        state.ramp_to = target;
        let ramp_secs = if mode == Mode::Steady {
            0.0
        } else {
            self.settings.ramp.as_secs_f64()
        };
        tracing::info!(
            from = %old_mode,
            to = %mode,
            old_failure_ratio = old_ratio,
            new_failure_ratio = target,
            ramp_secs,
            "payment simulator mode switched"
        );
    }

    fn status_at(&self, state: &mut State, now: Instant) -> Status {
        self.advance(state, now);
        let since = self.origin_unix + state.changed_at.saturating_duration_since(self.origin);
        Status {
            mode: state.mode,
            failure_ratio: self.ratio_at(state, now),
            target_failure_ratio: state.ramp_to,
            payments_per_sec: self.settings.payments_per_sec,
            success_total: state.success.whole,
            failure_total: state.failure.whole,
            since: since.as_secs(),
        }
    }

    fn render_at(&self, state: &mut State, now: Instant) -> String {
        use std::fmt::Write as _;

        let status = self.status_at(state, now);
        let mut out = String::with_capacity(1024);
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "# HELP crm_payments_total Payment attempts by outcome (synthetic, from payment-sim).\n\
             # TYPE crm_payments_total counter\n\
             crm_payments_total{{outcome=\"success\"}} {}\n\
             crm_payments_total{{outcome=\"failure\"}} {}\n\
             # HELP crm_payment_simulator_failure_ratio Current failure ratio of the payment simulator (0-1).\n\
             # TYPE crm_payment_simulator_failure_ratio gauge\n\
             crm_payment_simulator_failure_ratio {}\n\
             # HELP crm_payment_simulator_mode Current mode of the payment simulator (1 for the current mode).\n\
             # TYPE crm_payment_simulator_mode gauge\n",
            status.success_total, status.failure_total, status.failure_ratio,
        );
        for mode in Mode::ALL {
            let value = u8::from(mode == status.mode);
            let _ = writeln!(out, "crm_payment_simulator_mode{{mode=\"{mode}\"}} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulator on a clock the test moves by hand: `t(secs)` is `origin + secs`.
    struct Harness {
        sim: Simulator,
        origin: Instant,
    }

    impl Harness {
        fn new(settings: Settings, mode: Mode) -> Harness {
            let origin = Instant::now();
            let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
            Harness {
                sim: Simulator::new_at(settings, mode, origin, wall),
                origin,
            }
        }

        fn t(&self, secs: f64) -> Instant {
            self.origin + Duration::from_secs_f64(secs)
        }

        fn status(&self, secs: f64) -> Status {
            let now = self.t(secs);
            let mut state = self.sim.state.lock().unwrap();
            self.sim.status_at(&mut state, now)
        }

        fn switch(&self, secs: f64, mode: Mode) {
            let now = self.t(secs);
            let mut state = self.sim.state.lock().unwrap();
            self.sim.switch(&mut state, mode, now);
        }

        fn metrics(&self, secs: f64) -> String {
            let now = self.t(secs);
            let mut state = self.sim.state.lock().unwrap();
            self.sim.render_at(&mut state, now)
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn settings() -> Settings {
        Settings {
            payments_per_sec: 20.0,
            baseline_failure_ratio: 0.001,
            dip_failure_ratio: 0.05,
            ramp: Duration::from_secs(60),
        }
    }

    #[test]
    fn defaults_match_the_documented_burn_rates() {
        let s = Settings::default();
        assert_eq!(s, settings());
        let budget = 1.0 - 0.995;
        assert!(close(s.baseline_failure_ratio / budget, 0.2));
        assert!(close(s.dip_failure_ratio / budget, 10.0));
        assert!(s.validate().is_ok());
    }

    #[test]
    fn mode_parses_displays_and_serializes() {
        for mode in Mode::ALL {
            assert_eq!(mode.to_string().parse::<Mode>().unwrap(), mode);
            assert_eq!(serde_json::to_string(&mode).unwrap(), format!("\"{mode}\""));
        }
        assert_eq!(" DIP ".parse::<Mode>().unwrap(), Mode::Dip);
        let err = "outage".parse::<Mode>().unwrap_err().to_string();
        assert!(err.contains("outage"), "{err}");
        for name in ["steady", "dip", "recovery"] {
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn validation_rejects_out_of_range_settings() {
        let bad = [
            Settings {
                payments_per_sec: 0.0,
                ..settings()
            },
            Settings {
                payments_per_sec: -1.0,
                ..settings()
            },
            Settings {
                payments_per_sec: f64::INFINITY,
                ..settings()
            },
            Settings {
                baseline_failure_ratio: -0.1,
                ..settings()
            },
            Settings {
                dip_failure_ratio: 1.5,
                ..settings()
            },
            Settings {
                dip_failure_ratio: f64::NAN,
                ..settings()
            },
        ];
        for s in bad {
            assert!(s.validate().is_err(), "{s:?}");
        }
        assert!(
            Settings {
                baseline_failure_ratio: 0.0,
                dip_failure_ratio: 1.0,
                ..settings()
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    #[should_panic(expected = "invalid payment simulator settings")]
    fn new_panics_on_invalid_settings() {
        Simulator::new(
            Settings {
                payments_per_sec: 0.0,
                ..settings()
            },
            Mode::Steady,
        );
    }

    #[test]
    fn both_outcomes_exist_at_zero_from_the_start() {
        let h = Harness::new(settings(), Mode::Steady);
        let status = h.status(0.0);
        assert_eq!((status.success_total, status.failure_total), (0, 0));
        let text = h.metrics(0.0);
        assert!(
            text.contains("\ncrm_payments_total{outcome=\"success\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("\ncrm_payments_total{outcome=\"failure\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn steady_long_run_failure_ratio_equals_baseline() {
        let h = Harness::new(settings(), Mode::Steady);
        // Read every 15 s (a scrape interval) for 10 000 s: 200 000 attempts, 200 failures.
        let mut secs: f64 = 0.0;
        while secs < 10_000.0 {
            secs += 15.0;
            h.status(secs.min(10_000.0));
        }
        let s = h.status(10_000.0);
        // Each counter floors its own fraction: the sum may be one short.
        assert!(
            (s.success_total + s.failure_total).abs_diff(200_000) <= 1,
            "{s:?}"
        );
        assert!(s.failure_total.abs_diff(200) <= 1, "{s:?}");
        assert!(close(s.failure_ratio, 0.001));
        assert_eq!(s.mode, Mode::Steady);
        assert_eq!(s.since, 1_700_000_000);
    }

    #[test]
    fn reading_often_or_rarely_gives_the_same_counts() {
        let rare = Harness::new(settings(), Mode::Steady);
        let often = Harness::new(settings(), Mode::Steady);
        for h in [&rare, &often] {
            h.switch(100.0, Mode::Dip);
            h.switch(130.0, Mode::Recovery);
        }
        for i in 1..=3000 {
            often.status(f64::from(i) * 0.1);
        }
        let (a, b) = (rare.status(300.0), often.status(300.0));
        assert!(a.failure_total.abs_diff(b.failure_total) <= 1, "{a:?} {b:?}");
        assert!(a.success_total.abs_diff(b.success_total) <= 1, "{a:?} {b:?}");
    }

    #[test]
    fn dip_ramps_linearly_then_holds() {
        let h = Harness::new(settings(), Mode::Steady);
        h.switch(100.0, Mode::Dip);
        let at_switch = h.status(100.0);
        assert_eq!(at_switch.mode, Mode::Dip);
        assert_eq!(at_switch.since, 1_700_000_100);
        assert!(close(at_switch.failure_ratio, 0.001));
        assert!(close(at_switch.target_failure_ratio, 0.05));
        assert!(close(h.status(115.0).failure_ratio, 0.001 + 0.049 / 4.0));
        assert!(close(h.status(130.0).failure_ratio, (0.001 + 0.05) / 2.0));
        assert!(close(h.status(160.0).failure_ratio, 0.05));
        assert!(close(h.status(1000.0).failure_ratio, 0.05));
    }

    #[test]
    fn dip_failures_follow_the_ramp_integral() {
        let h = Harness::new(settings(), Mode::Steady);
        h.switch(0.0, Mode::Dip);
        // Over the 60 s ramp: 20/s × 60 s × mean ratio (0.001 + 0.05) / 2 = 30.6 failures.
        let ramp = h.status(60.0);
        assert_eq!((ramp.success_total, ramp.failure_total), (1169, 30));
        // Then 20/s × 0.05 = 1 failure per second.
        let held = h.status(160.0);
        assert_eq!((held.success_total, held.failure_total), (3069, 130));
    }

    #[test]
    fn recovery_returns_to_baseline() {
        let h = Harness::new(settings(), Mode::Steady);
        h.switch(0.0, Mode::Dip);
        h.switch(600.0, Mode::Recovery);
        let s = h.status(600.0);
        assert_eq!(s.mode, Mode::Recovery);
        assert!(close(s.failure_ratio, 0.05));
        assert!(close(s.target_failure_ratio, 0.001));
        assert!(close(h.status(630.0).failure_ratio, (0.05 + 0.001) / 2.0));
        assert!(close(h.status(660.0).failure_ratio, 0.001));
        let before = h.status(1000.0);
        let after = h.status(2000.0);
        // Held at the baseline: 20 000 attempts, 20 failures.
        assert!((after.failure_total - before.failure_total).abs_diff(20) <= 1);
        assert!(close(after.failure_ratio, 0.001));
    }

    #[test]
    fn switching_mid_ramp_does_not_jump() {
        let h = Harness::new(settings(), Mode::Steady);
        h.switch(0.0, Mode::Dip);
        let mid = 0.001 + 0.049 * 0.25;
        assert!(close(h.status(15.0).failure_ratio, mid));
        h.switch(15.0, Mode::Recovery);
        let s = h.status(15.0);
        assert!(close(s.failure_ratio, mid), "{s:?}");
        // Back down over a full ramp from where it was.
        assert!(close(h.status(45.0).failure_ratio, (mid + 0.001) / 2.0));
        assert!(close(h.status(75.0).failure_ratio, 0.001));
        // And up again mid-way down.
        h.switch(45.0 + 15.0, Mode::Dip);
        let from = mid + (0.001 - mid) * 0.75;
        assert!(close(h.status(60.0).failure_ratio, from));
        assert!(close(h.status(120.0).failure_ratio, 0.05));
    }

    #[test]
    fn steady_resets_to_baseline_at_once() {
        let h = Harness::new(settings(), Mode::Steady);
        h.switch(0.0, Mode::Dip);
        h.switch(120.0, Mode::Steady);
        let s = h.status(120.0);
        assert_eq!(s.mode, Mode::Steady);
        assert!(close(s.failure_ratio, 0.001));
    }

    #[test]
    fn switching_to_the_current_mode_changes_nothing() {
        let h = Harness::new(settings(), Mode::Steady);
        h.switch(0.0, Mode::Dip);
        h.switch(30.0, Mode::Dip);
        let s = h.status(60.0);
        assert!(close(s.failure_ratio, 0.05));
        assert_eq!(s.since, 1_700_000_000);
    }

    #[test]
    fn starting_in_dip_starts_at_the_dip_ratio() {
        let h = Harness::new(settings(), Mode::Dip);
        assert!(close(h.status(0.0).failure_ratio, 0.05));
        let s = h.status(100.0);
        assert!(
            s.success_total.abs_diff(1900) <= 1 && s.failure_total.abs_diff(100) <= 1,
            "{s:?}"
        );
    }

    #[test]
    fn zero_ramp_switches_at_once() {
        let h = Harness::new(
            Settings {
                ramp: Duration::ZERO,
                ..settings()
            },
            Mode::Steady,
        );
        h.switch(10.0, Mode::Dip);
        assert!(close(h.status(10.0).failure_ratio, 0.05));
        let s = h.status(20.0);
        assert!(s.failure_total.abs_diff(10) <= 1, "{s:?}");
    }

    #[test]
    fn counters_are_monotonic() {
        let h = Harness::new(
            Settings {
                payments_per_sec: 3.7,
                ..settings()
            },
            Mode::Steady,
        );
        let modes = [Mode::Dip, Mode::Recovery, Mode::Dip, Mode::Steady, Mode::Recovery];
        let mut previous = h.status(0.0);
        for step in 1..2000u32 {
            let secs = f64::from(step) * 0.7;
            if step % 97 == 0 {
                h.switch(secs, modes[(step / 97) as usize % modes.len()]);
            }
            let s = h.status(secs);
            assert!(s.success_total >= previous.success_total, "{previous:?} -> {s:?}");
            assert!(s.failure_total >= previous.failure_total, "{previous:?} -> {s:?}");
            assert!((0.001..=0.05).contains(&s.failure_ratio), "{s:?}");
            previous = s;
        }
        // A clock read that goes backwards changes nothing.
        let again = h.status(1.0);
        assert_eq!(again.success_total, previous.success_total);
        assert_eq!(again.failure_total, previous.failure_total);
    }

    #[test]
    fn metrics_text_has_the_exact_lines() {
        let h = Harness::new(settings(), Mode::Steady);
        h.switch(0.0, Mode::Dip);
        let text = h.metrics(160.0);
        let expected = "\
# HELP crm_payments_total Payment attempts by outcome (synthetic, from payment-sim).
# TYPE crm_payments_total counter
crm_payments_total{outcome=\"success\"} 3069
crm_payments_total{outcome=\"failure\"} 130
# HELP crm_payment_simulator_failure_ratio Current failure ratio of the payment simulator (0-1).
# TYPE crm_payment_simulator_failure_ratio gauge
crm_payment_simulator_failure_ratio 0.05
# HELP crm_payment_simulator_mode Current mode of the payment simulator (1 for the current mode).
# TYPE crm_payment_simulator_mode gauge
crm_payment_simulator_mode{mode=\"steady\"} 0
crm_payment_simulator_mode{mode=\"dip\"} 1
crm_payment_simulator_mode{mode=\"recovery\"} 0
";
        assert_eq!(text, expected);
        // Every sample line is `name{labels} value` with a numeric value.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(series.starts_with("crm_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn status_serializes_with_the_documented_fields() {
        let h = Harness::new(settings(), Mode::Steady);
        let json = serde_json::to_value(h.status(1.0)).unwrap();
        for field in [
            "mode",
            "failure_ratio",
            "target_failure_ratio",
            "payments_per_sec",
            "success_total",
            "failure_total",
            "since",
        ] {
            assert!(json.get(field).is_some(), "{field} missing in {json}");
        }
        assert_eq!(json["mode"], "steady");
        assert_eq!(json["success_total"], 19);
        assert_eq!(json["failure_total"], 0);
    }

    #[test]
    fn public_methods_use_the_real_clock() {
        let sim = Simulator::new(settings(), Mode::Steady);
        sim.set_mode(Mode::Dip);
        let s = sim.status();
        assert_eq!(s.mode, Mode::Dip);
        assert!(s.failure_ratio >= 0.001 && s.failure_ratio <= 0.05);
        assert!(
            sim.render_metrics()
                .contains("crm_payment_simulator_mode{mode=\"dip\"} 1\n")
        );
        assert_eq!(sim.settings(), &settings());
    }
}
