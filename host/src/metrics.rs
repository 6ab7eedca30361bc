//! Prometheus metrics, updated from events as they happen.
//!
//! The original system's series keep their names and labels; the host adds
//! what a plugin host needs. Gauges that describe the present (enabled,
//! plugins loaded, cooldown remaining) are set from the engine at scrape.

use autoheal_core::event::{ActionFinished, Budget, Event, EventBody, SkipReason};
use autoheal_core::mode::DryRunReason;

use crate::remediation::ActiveCooldown;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The host's Prometheus registry and series.
pub struct Metrics {
    registry: Registry,
    /// `autoheal_enabled`: the kill switch.
    pub enabled: IntGauge,
    /// `autoheal_dry_run`: the dry-run switch.
    pub dry_run: IntGauge,
    actions: IntCounterVec,
    action_last_timestamp: GaugeVec,
    cooldown_remaining: GaugeVec,
    events: IntCounterVec,
    action_failures: IntCounterVec,
    last_event_timestamp: Gauge,
    heartbeat: Gauge,
    last_action_epoch: Gauge,
    plugins_loaded: IntGauge,
    plugin_rejections: IntCounter,
    invocations: IntCounterVec,
    invocation_duration: HistogramVec,
    capability_calls: IntCounterVec,
    webhook_requests: IntCounterVec,
    auth_failures: IntCounterVec,
    bounds_hit: IntCounterVec,
    budget_skips: IntCounterVec,
    repeat_cap_skips: IntCounterVec,
    notifications: IntCounterVec,
    remediations: IntCounterVec,
    time_to_recover: HistogramVec,
    approvals: IntCounterVec,
    /// `autoheal_sse_subscribers`: connected `GET /events` clients.
    pub sse_subscribers: IntGauge,
    /// `autoheal_audit_writable`: 0 while the audit trail cannot be written.
    pub audit_writable: IntGauge,
    /// `autoheal_audit_bytes`: the trail's live file and rolled segments.
    pub audit_bytes: IntGauge,
    /// `autoheal_audit_filesystem_free_bytes`: free space where the trail is written.
    pub audit_filesystem_free_bytes: IntGauge,
    /// `autoheal_cluster_available`: 0 while a replica's etcd does not answer.
    pub cluster_available: IntGauge,
    /// `autoheal_deferred_alerts`: alerts held by their plugin's grace, set at scrape.
    pub deferred_alerts: IntGauge,
    claims: IntCounterVec,
    actions_queued: IntGauge,
    queue_wait: Histogram,
    paused: IntGaugeVec,
    /// Alertnames that have had a cooldown, so that they read 0 once ready.
    cooldown_alerts: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Alertnames that get series of their own: those a loaded manifest or
    /// the config names. Any other shares [`OTHER_ALERTNAME`], so that
    /// senders cannot grow `/metrics` without bound.
    known_alertnames: std::sync::RwLock<std::collections::HashSet<String>>,
}

/// One series of `autoheal_paused`, given at each scrape: what pauses
/// actions (`source`: `window` for a `[[maintenance]]` window, by `name`;
/// the list is open to other sources, such as ad-hoc pauses) and whether
/// it does now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paused {
    /// What kind of pause: `window`.
    pub source: &'static str,
    /// Which one.
    pub name: String,
    /// Whether it pauses now.
    pub open: bool,
}

/// How often the heartbeat is set: well under the 15 s scrape interval of
/// monitoring/prometheus.yml, so that each scrape sees a fresh one.
pub const HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The `reason`s of `autoheal_auth_failures_total{scope="webhook"}` a
/// webhook can be refused with (`not_configured` is the operator scope's).
const WEBHOOK_REFUSALS: [&str; 4] = ["missing", "wrong", "host_not_allowed", "cross_origin"];

/// The bounds the host itself enforces (`autoheal_bounds_hit_total{bound}`);
/// a plugin's (`result`, `target`) come with the action that hit them.
const HOST_BOUNDS: [&str; 8] = [
    "alert_size",
    "auth_events",
    "body_timeout",
    "concurrent_webhooks",
    "header_timeout",
    "max_connections",
    "pending_actions",
    "webhook_alerts",
];

/// A replica's claim on an action it records as started or queued: won, or
/// not asked (the cluster did not answer: the action runs in dry-run).
fn claim_outcome(dry_run_reason: Option<DryRunReason>) -> &'static str {
    match dry_run_reason {
        Some(DryRunReason::ClusterUnavailable) => "unavailable",
        _ => "won",
    }
}

/// The `mode` label of an outcome: what ran for real, or in dry-run (an
/// operator's rehearsal, or a dry-run the host forced), so that a replica
/// that changed nothing never counts as a fix or a failure of one.
const MODES: [&str; 2] = ["real", "dry_run"];

/// The `mode` of a decision skip (`autoheal_actions_total{result="skip"}`):
/// nothing ran. Empty, which Prometheus stores as no `mode` label.
const NO_MODE: &str = "";

/// An invocation's results, each with the modes it can have: `ok` is real
/// (a dry-run's success is `dry_run`), the others may be either.
const RESULT_MODES: [(&str, &str); 6] = [
    ("ok", "real"),
    ("dry_run", "dry_run"),
    ("fail", "real"),
    ("fail", "dry_run"),
    ("skipped", "real"),
    ("skipped", "dry_run"),
];

fn mode(dry_run: bool) -> &'static str {
    if dry_run { "dry_run" } else { "real" }
}

/// The `alertname` label of alerts no manifest or config names.
pub const OTHER_ALERTNAME: &str = "(other)";

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    /// Registers every series, at zero.
    pub fn new() -> Self {
        let registry = Registry::new();
        let metrics = Metrics {
            enabled: IntGauge::with_opts(opts("autoheal_enabled", "Master kill switch (0=disabled, 1=enabled)"))
                .unwrap(),
            dry_run: IntGauge::with_opts(opts(
                "autoheal_dry_run",
                "Dry-run switch (1=actions run in dry-run, 0=real while enabled)",
            ))
            .unwrap(),
            actions: IntCounterVec::new(
                opts(
                    "autoheal_actions_total",
                    "Decisions and actions by alert, result (ok, fail, skip, dry_run, skipped) and mode (real, dry_run; none for skip: nothing ran)",
                ),
                &["alertname", "result", "mode"],
            )
            .unwrap(),
            action_last_timestamp: GaugeVec::new(
                opts("autoheal_action_last_timestamp", "Unix time of the last action per alert"),
                &["alertname"],
            )
            .unwrap(),
            cooldown_remaining: GaugeVec::new(
                opts("autoheal_cooldown_remaining_seconds", "Seconds left in cooldown per alert (0 = ready)"),
                &["alertname"],
            )
            .unwrap(),
            events: IntCounterVec::new(opts("autoheal_event_total", "Events by kind"), &["kind"]).unwrap(),
            action_failures: IntCounterVec::new(
                opts("autoheal_action_failures_total", "Failed actions per alert and mode (real, dry_run)"),
                &["alertname", "mode"],
            )
            .unwrap(),
            last_event_timestamp: Gauge::with_opts(opts(
                "autoheal_last_event_timestamp",
                "Unix time of the last event (refused requests' auth_failed events excepted)",
            ))
            .unwrap(),
            heartbeat: Gauge::with_opts(opts(
                "autoheal_heartbeat_timestamp_seconds",
                "Unix time of the host's last heartbeat (set every few seconds while it runs)",
            ))
            .unwrap(),
            last_action_epoch: Gauge::with_opts(opts(
                "autoheal_last_action_epoch",
                "Unix time of the last action (0 = none yet)",
            ))
            .unwrap(),
            plugins_loaded: IntGauge::with_opts(opts("autoheal_plugins_loaded", "Plugins loaded")).unwrap(),
            plugin_rejections: IntCounter::with_opts(opts(
                "autoheal_plugin_rejections_total",
                "Plugins that failed to load",
            ))
            .unwrap(),
            invocations: IntCounterVec::new(
                opts(
                    "autoheal_plugin_invocations_total",
                    "Plugin invocations by plugin, result and mode (real, dry_run)",
                ),
                &["plugin", "result", "mode"],
            )
            .unwrap(),
            invocation_duration: HistogramVec::new(
                HistogramOpts::new("autoheal_plugin_invocation_duration_seconds", "Plugin invocation time")
                    .buckets(vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25, 1.0, 5.0, 20.0]),
                &["plugin"],
            )
            .unwrap(),
            capability_calls: IntCounterVec::new(
                opts(
                    "autoheal_capability_calls_total",
                    "Capability calls by plugin, capability and outcome (ok, recorded, denied, circuit_open, failed)",
                ),
                &["plugin", "capability", "outcome"],
            )
            .unwrap(),
            webhook_requests: IntCounterVec::new(
                opts("autoheal_webhook_requests_total", "Webhook requests by HTTP status"),
                &["status"],
            )
            .unwrap(),
            auth_failures: IntCounterVec::new(
                opts(
                    "autoheal_auth_failures_total",
                    "Requests refused by scope (webhook, operator, read) and reason (missing, wrong, not_configured, host_not_allowed, cross_origin, csrf, no_role)",
                ),
                &["scope", "reason"],
            )
            .unwrap(),
            bounds_hit: IntCounterVec::new(
                opts(
                    "autoheal_bounds_hit_total",
                    "Inputs cut or refused at a bound (result, target, webhook_alerts, alert_size, ...)",
                ),
                &["bound"],
            )
            .unwrap(),
            notifications: IntCounterVec::new(
                opts(
                    "autoheal_notifications_total",
                    "Autoheal's own alerts posted to Alertmanager, by outcome (ok, failed)",
                ),
                &["outcome"],
            )
            .unwrap(),
            budget_skips: IntCounterVec::new(
                opts(
                    "autoheal_budget_skips_total",
                    "Real actions not started because a [budget] was spent (max_actions, max_in_flight, max_in_flight_per_label)",
                ),
                &["budget"],
            )
            .unwrap(),
            repeat_cap_skips: IntCounterVec::new(
                opts(
                    "autoheal_repeat_cap_skips_total",
                    "Real actions not started because a repeat cap of the plugin's manifest was reached (limits.max_actions, max_actions_all_keys)",
                ),
                &["plugin"],
            )
            .unwrap(),
            remediations: IntCounterVec::new(
                opts(
                    "autoheal_remediations_total",
                    "Actions of plugins with [verify] by plugin, outcome (verified: the alert resolved in time; ineffective: it did not) and mode (real; dry_run: an operator's rehearsal, nothing changed)",
                ),
                &["plugin", "outcome", "mode"],
            )
            .unwrap(),
            time_to_recover: HistogramVec::new(
                HistogramOpts::new(
                    "autoheal_time_to_recover_seconds",
                    "From a verified action's start to its alert's resolution, by plugin and mode (real, dry_run)",
                )
                .buckets(vec![1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0]),
                &["plugin", "mode"],
            )
            .unwrap(),
            approvals: IntCounterVec::new(
                opts(
                    "autoheal_approvals_total",
                    "Approvals by outcome (requested, granted, denied, expired, cancelled)",
                ),
                &["outcome"],
            )
            .unwrap(),
            sse_subscribers: IntGauge::with_opts(opts("autoheal_sse_subscribers", "Connected SSE subscribers"))
                .unwrap(),
            audit_writable: IntGauge::with_opts(opts(
                "autoheal_audit_writable",
                "1 while the audit trail can be written; 0 after a failed write (a full disk), until one succeeds",
            ))
            .unwrap(),
            audit_bytes: IntGauge::with_opts(opts(
                "autoheal_audit_bytes",
                "Bytes of the audit trail: its live file and every rolled segment",
            ))
            .unwrap(),
            audit_filesystem_free_bytes: IntGauge::with_opts(opts(
                "autoheal_audit_filesystem_free_bytes",
                "Bytes free (for an unprivileged writer) on the filesystem of the audit trail's directory",
            ))
            .unwrap(),
            cluster_available: IntGauge::with_opts(opts(
                "autoheal_cluster_available",
                "A replica: 1 while its etcd cluster answers, 0 while no action may run for real; a single host: 1",
            ))
            .unwrap(),
            deferred_alerts: IntGauge::with_opts(opts(
                "autoheal_deferred_alerts",
                "Alerts held until they have been firing for their plugin's firing_for (one per plugin and alert)",
            ))
            .unwrap(),
            claims: IntCounterVec::new(
                opts(
                    "autoheal_claims_total",
                    "A replica's claims on actions: won (it acts), held (another replica acts), unavailable (no cluster: dry-run)",
                ),
                &["outcome"],
            )
            .unwrap(),
            actions_queued: IntGauge::with_opts(opts(
                "autoheal_actions_queued",
                "Admitted actions waiting for a place to run (their plugin's max_concurrent, or [budget] max_in_flight, is taken)",
            ))
            .unwrap(),
            queue_wait: Histogram::with_opts(
                HistogramOpts::new(
                    "autoheal_action_queue_wait_seconds",
                    "How long queued actions waited for their turn",
                )
                .buckets(vec![0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0]),
            )
            .unwrap(),
            paused: IntGaugeVec::new(
                opts(
                    "autoheal_paused",
                    "1 while a maintenance window (source=\"window\") is open or an operator's pause (source=\"pause\") lasts: the actions it covers are skipped as paused",
                ),
                &["source", "name"],
            )
            .unwrap(),
            cooldown_alerts: Default::default(),
            known_alertnames: Default::default(),
            registry,
        };
        metrics.register_all();
        metrics.cluster_available.set(1);
        for outcome in ["won", "held", "unavailable"] {
            metrics.claims.with_label_values(&[outcome]);
        }
        metrics.seed(OTHER_ALERTNAME);
        // At 0 from the start: a refused webhook is alerted on with
        // increase(), which sees nothing of a series whose first sample is
        // already its first refusal.
        for reason in WEBHOOK_REFUSALS {
            metrics.auth_failures.with_label_values(&["webhook", reason]);
        }
        metrics.beat(autoheal_core::util::unix_now());
        for outcome in ["requested", "granted", "denied", "expired", "cancelled"] {
            metrics.approvals.with_label_values(&[outcome]);
        }
        // The same for every series a rule or a dashboard takes increase()
        // or rate() of: present from the first scrape, at 0.
        metrics.webhook_requests.with_label_values(&["200"]);
        for budget in [
            Budget::MaxActions,
            Budget::MaxInFlight,
            Budget::MaxInFlightPerLabel,
        ] {
            metrics.budget_skips.with_label_values(&[budget.as_str()]);
        }
        for bound in HOST_BOUNDS {
            metrics.bounds_hit.with_label_values(&[bound]);
        }
        for outcome in ["ok", "failed"] {
            metrics.notifications.with_label_values(&[outcome]);
        }
        metrics
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.enabled.clone()),
            Box::new(self.dry_run.clone()),
            Box::new(self.actions.clone()),
            Box::new(self.action_last_timestamp.clone()),
            Box::new(self.cooldown_remaining.clone()),
            Box::new(self.events.clone()),
            Box::new(self.action_failures.clone()),
            Box::new(self.last_event_timestamp.clone()),
            Box::new(self.heartbeat.clone()),
            Box::new(self.last_action_epoch.clone()),
            Box::new(self.plugins_loaded.clone()),
            Box::new(self.plugin_rejections.clone()),
            Box::new(self.invocations.clone()),
            Box::new(self.invocation_duration.clone()),
            Box::new(self.capability_calls.clone()),
            Box::new(self.webhook_requests.clone()),
            Box::new(self.auth_failures.clone()),
            Box::new(self.bounds_hit.clone()),
            Box::new(self.budget_skips.clone()),
            Box::new(self.repeat_cap_skips.clone()),
            Box::new(self.notifications.clone()),
            Box::new(self.remediations.clone()),
            Box::new(self.time_to_recover.clone()),
            Box::new(self.approvals.clone()),
            Box::new(self.deferred_alerts.clone()),
            Box::new(self.sse_subscribers.clone()),
            Box::new(self.audit_writable.clone()),
            Box::new(self.audit_bytes.clone()),
            Box::new(self.audit_filesystem_free_bytes.clone()),
            Box::new(self.cluster_available.clone()),
            Box::new(self.claims.clone()),
            Box::new(self.actions_queued.clone()),
            Box::new(self.queue_wait.clone()),
            Box::new(self.paused.clone()),
        ];
        for collector in collectors {
            self.registry
                .register(collector)
                .expect("metric names are unique");
        }
    }

    /// `autoheal_heartbeat_timestamp_seconds`: the host is alive at `now`.
    pub fn beat(&self, now: f64) {
        self.heartbeat.set(now);
    }

    /// Sets the heartbeat every [`HEARTBEAT_INTERVAL`] until `shutdown`.
    /// A timer of its own, not the time of the last event: a healthy host
    /// that no alert reaches for hours must still look alive, and one whose
    /// runtime no longer runs its tasks must not.
    pub async fn beat_until(metrics: std::sync::Arc<Metrics>, shutdown: tokio_util::sync::CancellationToken) {
        let mut ticks = tokio::time::interval(HEARTBEAT_INTERVAL);
        // After a stall, one beat says "alive now"; a burst would say nothing more.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => metrics.beat(autoheal_core::util::unix_now()),
            }
        }
    }

    /// `autoheal_last_action_epoch`: when the last action ran (0: never).
    pub fn last_action_epoch(&self) -> f64 {
        self.last_action_epoch.get()
    }

    /// Sets `autoheal_last_action_epoch` to `ts` (the last action in the
    /// trail, read back at start) unless a newer one is set.
    pub fn restore_last_action_epoch(&self, ts: f64) {
        if self.last_action_epoch.get() < ts {
            self.last_action_epoch.set(ts);
        }
    }

    /// Sets `autoheal_last_action_epoch` and `autoheal_action_last_timestamp`
    /// from actions read back from the trail at start, as `(ts, alertname)`:
    /// a restart of the host must not make them (and `/vision`, the console)
    /// say "never". Newer values already set win. Call it once the plugins
    /// are loaded, so that their alertnames have series of their own.
    pub fn restore_last_actions(&self, actions: impl IntoIterator<Item = (f64, String)>) {
        for (ts, alertname) in actions {
            let gauge = self
                .action_last_timestamp
                .with_label_values(&[&self.alertname_label(&alertname)]);
            if gauge.get() < ts {
                gauge.set(ts);
            }
            if self.last_action_epoch.get() < ts {
                self.last_action_epoch.set(ts);
            }
        }
    }

    /// Gives these alertnames series of their own (the config's names; a
    /// loaded manifest's are learnt from its `plugin_loaded` event).
    /// Their seed series exist from then on, at 0: dashboards and
    /// `AutohealActionFailureSpike` see 0, not "no data".
    pub fn know_alertnames<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let mut known = self.known_alertnames.write().unwrap_or_else(|p| p.into_inner());
        for name in names {
            if known.insert(name.to_owned()) {
                self.seed(name);
            }
        }
    }

    /// The per-alertname seed series of `alertname`, at 0.
    fn seed(&self, alertname: &str) {
        for (result, mode) in RESULT_MODES {
            self.actions.with_label_values(&[alertname, result, mode]);
        }
        self.actions.with_label_values(&[alertname, "skip", NO_MODE]);
        for mode in MODES {
            self.action_failures.with_label_values(&[alertname, mode]);
        }
        // Created at 0 if absent; a time restored from the trail is kept.
        self.action_last_timestamp.with_label_values(&[alertname]);
        self.cooldown_remaining.with_label_values(&[alertname]).set(0.0);
        let mut cooling = self.cooldown_alerts.lock().unwrap_or_else(|p| p.into_inner());
        cooling.insert(alertname.to_owned());
    }

    /// The `alertname` label for `name`: itself if known, else [`OTHER_ALERTNAME`].
    fn alertname_label(&self, name: &str) -> String {
        let known = self.known_alertnames.read().unwrap_or_else(|p| p.into_inner());
        if known.contains(name) {
            name.to_owned()
        } else {
            OTHER_ALERTNAME.to_owned()
        }
    }

    /// `autoheal_webhook_requests_total{status}` of a webhook that was
    /// received and decided: 200, or 503 when an alert of it found no room
    /// or the trail could not be written. (A rejected one is counted from
    /// its `webhook_rejected`.)
    pub fn webhook_answered(&self, status: u16) {
        self.webhook_requests
            .with_label_values(&[&status.to_string()])
            .inc();
    }

    /// Counts a refusal that was not audited (past the events-per-second budget).
    pub fn auth_failed_unaudited(&self, scope: &str, reason: &str) {
        self.auth_failures.with_label_values(&[scope, reason]).inc();
        self.bound_hit("auth_events", 1);
    }

    /// Counts an input cut or refused at `bound`.
    pub fn bound_hit(&self, bound: &str, times: u64) {
        debug_assert!(HOST_BOUNDS.contains(&bound), "{bound} is not in HOST_BOUNDS");
        self.bounds_hit.with_label_values(&[bound]).inc_by(times);
    }

    /// Counts `count` notices posted to Alertmanager with `outcome`.
    pub fn notifications_posted(&self, count: u64, outcome: &str) {
        self.notifications.with_label_values(&[outcome]).inc_by(count);
    }

    /// Updates the series an event changes. Called for every event, in order.
    pub fn observe(&self, event: &Event) {
        self.events.with_label_values(&[event.kind().as_str()]).inc();
        // A refused request is audited, but it is not autoheal working:
        // Alertmanager sending with a wrong token would otherwise keep the
        // last event fresh while no alert gets in.
        if !matches!(event.body, EventBody::AuthFailed(_)) {
            self.last_event_timestamp.set(event.ts);
        }
        match &event.body {
            EventBody::DecisionSkip(skip) => {
                self.actions
                    .with_label_values(&[self.alertname_label(&skip.alertname).as_str(), "skip", NO_MODE])
                    .inc();
                if skip.reason == SkipReason::Overloaded {
                    self.bound_hit("pending_actions", 1);
                }
                if skip.reason == SkipReason::Claimed {
                    self.claims.with_label_values(&["held"]).inc();
                }
                if let Some(budget) = skip.budget {
                    self.budget_skips.with_label_values(&[budget.as_str()]).inc();
                }
                if skip.reason == SkipReason::RepeatCap {
                    let plugin = skip.plugin.as_deref().unwrap_or_default();
                    self.repeat_cap_skips.with_label_values(&[plugin]).inc();
                }
                // It waited, and leaves the queue without running.
                if skip.queued_at.is_some() {
                    self.actions_queued.dec();
                }
            }
            EventBody::ActionQueued(queued) => {
                self.actions_queued.inc();
                if event.replica.is_some() {
                    self.claims
                        .with_label_values(&[claim_outcome(queued.dry_run_reason)])
                        .inc();
                }
            }
            // Its turn came: its claim was counted when it was queued.
            EventBody::ActionStarted(started) if started.queued_sec.is_some() => {
                self.actions_queued.dec();
                self.queue_wait.observe(started.queued_sec.unwrap_or_default());
            }
            EventBody::ActionOk(finished) => self.observe_action(event.ts, finished, "ok"),
            EventBody::ActionDryRun(finished) => self.observe_action(event.ts, finished, "dry_run"),
            // The plugin declined: counted apart from ok and fail, and not
            // an action for the last-action series (nothing was changed).
            EventBody::ActionSkipped(finished) => self.observe_action(event.ts, finished, "skipped"),
            EventBody::ActionFail(finished) => {
                self.observe_action(event.ts, finished, "fail");
                self.action_failures
                    .with_label_values(&[
                        self.alertname_label(&finished.alertname).as_str(),
                        mode(finished.dry_run),
                    ])
                    .inc();
            }
            // A replica's actions start only after their claim was asked for.
            EventBody::ActionStarted(started) if event.replica.is_some() => {
                self.claims
                    .with_label_values(&[claim_outcome(started.dry_run_reason)])
                    .inc();
            }
            // Whoever flipped (an operator here, another replica through
            // the cluster), the flip is an event: the gauge follows it.
            EventBody::ModeChanged(changed) => {
                self.enabled.set(i64::from(changed.enabled));
                self.dry_run.set(i64::from(changed.dry_run));
            }
            EventBody::PluginRejected(_) => self.plugin_rejections.inc(),
            EventBody::PluginLoaded(loaded) => {
                self.know_alertnames(loaded.alertnames.iter().map(String::as_str));
                // At 0 from the start, so that the share of actions that
                // worked is a number as soon as one is judged.
                for outcome in ["verified", "ineffective"] {
                    for mode in MODES {
                        self.remediations
                            .with_label_values(&[&loaded.plugin, outcome, mode]);
                    }
                }
                for (result, mode) in RESULT_MODES {
                    self.invocations
                        .with_label_values(&[&loaded.plugin, result, mode]);
                }
                self.invocation_duration.with_label_values(&[&loaded.plugin]);
                for mode in MODES {
                    self.time_to_recover.with_label_values(&[&loaded.plugin, mode]);
                }
                self.repeat_cap_skips.with_label_values(&[&loaded.plugin]);
            }
            EventBody::RemediationVerified(verified) => {
                let mode = mode(verified.dry_run);
                self.remediations
                    .with_label_values(&[&verified.plugin, "verified", mode])
                    .inc();
                self.time_to_recover
                    .with_label_values(&[&verified.plugin, mode])
                    .observe(verified.time_to_recover_sec);
            }
            EventBody::RemediationIneffective(ineffective) => {
                self.remediations
                    .with_label_values(&[&ineffective.plugin, "ineffective", mode(ineffective.dry_run)])
                    .inc();
            }
            EventBody::ApprovalRequested(_) => self.approvals.with_label_values(&["requested"]).inc(),
            EventBody::ApprovalGranted(_) => self.approvals.with_label_values(&["granted"]).inc(),
            EventBody::ApprovalDenied(_) => self.approvals.with_label_values(&["denied"]).inc(),
            EventBody::ApprovalExpired(_) => self.approvals.with_label_values(&["expired"]).inc(),
            EventBody::ApprovalCancelled(_) => self.approvals.with_label_values(&["cancelled"]).inc(),
            EventBody::WebhookRejected(rejected) => {
                self.webhook_requests
                    .with_label_values(&[&rejected.status.to_string()])
                    .inc();
            }
            EventBody::AuthFailed(failed) => {
                self.auth_failures
                    .with_label_values(&[failed.scope.as_str(), failed.reason.as_str()])
                    .inc();
            }
            _ => {}
        }
    }

    /// The series of an action's result (`ok`, `dry_run`, `fail`, `skipped`).
    fn observe_action(&self, ts: f64, finished: &ActionFinished, result: &str) {
        let alertname = self.alertname_label(&finished.alertname);
        let alertname = alertname.as_str();
        let plugin = finished.plugin.as_str();
        let mode = mode(finished.dry_run);
        self.actions.with_label_values(&[alertname, result, mode]).inc();
        if result != "skipped" {
            self.action_last_timestamp.with_label_values(&[alertname]).set(ts);
            self.last_action_epoch.set(ts);
        }
        self.invocations.with_label_values(&[plugin, result, mode]).inc();
        self.invocation_duration
            .with_label_values(&[plugin])
            .observe(finished.duration_ms / 1000.0);
        for bound in &finished.truncated {
            self.bounds_hit.with_label_values(&[bound.as_str()]).inc();
        }
        for call in &finished.calls {
            self.capability_calls
                .with_label_values(&[plugin, call.capability.as_str(), call.outcome.as_str()])
                .inc();
        }
    }

    /// Sets the per-alert cooldown gauges from the engine's cooldowns,
    /// zeroing alerts that left cooldown.
    fn set_cooldowns(&self, active: &[ActiveCooldown]) {
        let mut known = self.cooldown_alerts.lock().unwrap_or_else(|p| p.into_inner());
        known.extend(active.iter().map(|c| self.alertname_label(&c.alertname)));
        for alertname in known.iter() {
            let left = active
                .iter()
                .filter(|c| &self.alertname_label(&c.alertname) == alertname)
                .map(|c| c.remaining_sec.ceil())
                .fold(0.0, f64::max);
            self.cooldown_remaining.with_label_values(&[alertname]).set(left);
        }
    }

    /// `autoheal_paused`: exactly the series given, each 1 while open.
    /// Those not given any more (an ad-hoc pause that ended) are dropped.
    fn set_paused(&self, paused: &[Paused]) {
        self.paused.reset();
        for p in paused {
            self.paused
                .with_label_values(&[p.source, p.name.as_str()])
                .set(i64::from(p.open));
        }
    }

    /// The text exposition format, with the gauges of the present (plugins
    /// loaded, cooldowns running, what is paused) brought up to date first.
    pub fn render(&self, plugins_loaded: usize, cooldowns: &[ActiveCooldown], paused: &[Paused]) -> String {
        self.plugins_loaded.set(plugins_loaded as i64);
        self.set_cooldowns(cooldowns);
        self.set_paused(paused);
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding cannot fail");
        String::from_utf8(buffer).expect("exposition is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_core::event::{AuthFailed, ModeChanged, WebhookRejected};
    use autoheal_core::mode::ExecutionMode;

    /// docs/metrics.md's series, each table's first column without labels.
    fn documented_series() -> std::collections::BTreeSet<String> {
        include_str!("../../docs/metrics.md")
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .map(|cell| cell.split(['`', '{']).next().unwrap_or_default().to_owned())
            .collect()
    }

    /// What `/metrics` exports right after start: the series families of
    /// a registry that knows one alertname and one loaded plugin.
    fn exported_after_start() -> std::collections::BTreeSet<String> {
        let metrics = Metrics::new();
        metrics.know_alertnames(["ServiceDown"]);
        metrics.observe(&event(
            1.0,
            EventBody::PluginLoaded(autoheal_core::event::PluginInfo {
                plugin: "restart-crm-api".into(),
                version: "1.0.0".into(),
                file: "crm.toml".into(),
                alertnames: vec!["ServiceDown".into()],
                containers: vec!["crm-api".into()],
                component_hash: "0".repeat(64),
                from_cache: false,
                cache_rejected: None,
                replaces_hash: None,
                replaces_version: None,
                wit: Some("0.2.0".into()),
                compile_ms: None,
                queued_ms: None,
            }),
        ));
        metrics
            .render(
                1,
                &[],
                &[Paused {
                    source: "window",
                    name: "weekly-db".into(),
                    open: false,
                }],
            )
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .filter_map(|line| line.split(' ').next())
            .map(str::to_owned)
            .collect()
    }

    /// Labelled by plugin × capability × outcome: seeding every combination
    /// would multiply series nobody reads; docs/metrics.md says it appears
    /// with a plugin's first call.
    const FROM_FIRST_CALL: [&str; 1] = ["autoheal_capability_calls_total"];

    #[test]
    fn the_documented_series_are_exactly_those_exported_from_the_start() {
        let documented = documented_series();
        let exported = exported_after_start();
        assert!(documented.len() > 20, "the tables were read: {documented:?}");
        let undocumented: Vec<_> = exported.difference(&documented).collect();
        let absent: Vec<_> = documented
            .difference(&exported)
            .filter(|series| !FROM_FIRST_CALL.contains(&series.as_str()))
            .collect();
        assert!(
            undocumented.is_empty(),
            "exported, not in docs/metrics.md: {undocumented:?}"
        );
        assert!(
            absent.is_empty(),
            "in docs/metrics.md, absent from /metrics after start: {absent:?}"
        );
    }

    fn sample(metrics: &Metrics, series: &str) -> Option<f64> {
        metrics
            .render(0, &[], &[])
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    fn event(ts: f64, body: EventBody) -> Event {
        Event {
            id: 1,
            ts,
            replica: None,
            body,
        }
    }

    #[test]
    fn refused_requests_are_counted_but_do_not_refresh_the_last_event() {
        let metrics = Metrics::new();
        // Every webhook refusal series is there, at 0, before the first one.
        for reason in WEBHOOK_REFUSALS {
            let series = format!("autoheal_auth_failures_total{{reason=\"{reason}\",scope=\"webhook\"}}");
            assert_eq!(sample(&metrics, &series), Some(0.0), "{series}");
        }
        metrics.observe(&event(
            100.0,
            EventBody::WebhookRejected(WebhookRejected {
                error: "bad json".into(),
                status: 400,
            }),
        ));
        assert_eq!(sample(&metrics, "autoheal_last_event_timestamp"), Some(100.0));
        metrics.observe(&event(
            200.0,
            EventBody::AuthFailed(AuthFailed {
                method: "POST".into(),
                path: "/alert".into(),
                reason: "wrong".into(),
                role: None,
                scope: "webhook".into(),
            }),
        ));
        assert_eq!(
            sample(
                &metrics,
                "autoheal_auth_failures_total{reason=\"wrong\",scope=\"webhook\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&metrics, "autoheal_last_event_timestamp"),
            Some(100.0),
            "an auth_failed event must not look like autoheal at work"
        );
    }

    #[test]
    fn a_mode_change_sets_both_switches_gauges() {
        let metrics = Metrics::new();
        let changed = |enabled: bool, dry_run: bool| {
            EventBody::ModeChanged(ModeChanged {
                by: None,
                by_comment: None,
                by_kind: None,
                by_name: None,
                dry_run,
                enabled,
                mode: ExecutionMode::from_switches(enabled, dry_run).0,
                previous_dry_run: !dry_run,
                previous_enabled: !enabled,
            })
        };
        metrics.observe(&event(1.0, changed(true, false)));
        assert_eq!(sample(&metrics, "autoheal_enabled"), Some(1.0));
        assert_eq!(sample(&metrics, "autoheal_dry_run"), Some(0.0));
        metrics.observe(&event(2.0, changed(false, true)));
        assert_eq!(sample(&metrics, "autoheal_enabled"), Some(0.0));
        assert_eq!(sample(&metrics, "autoheal_dry_run"), Some(1.0));
    }

    #[tokio::test]
    async fn the_heartbeat_is_set_at_start_and_by_its_timer_until_shutdown() {
        let metrics = std::sync::Arc::new(Metrics::new());
        let started = sample(&metrics, "autoheal_heartbeat_timestamp_seconds").unwrap();
        assert!(
            (autoheal_core::util::unix_now() - started).abs() < 60.0,
            "{started}"
        );
        metrics.beat(0.0);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let timer = tokio::spawn(Metrics::beat_until(metrics.clone(), shutdown.clone()));
        // The interval's first tick is at once.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while sample(&metrics, "autoheal_heartbeat_timestamp_seconds") == Some(0.0) {
            assert!(tokio::time::Instant::now() < deadline, "the timer never beat");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        shutdown.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), timer)
            .await
            .expect("the timer stops with the host")
            .unwrap();
    }

    #[test]
    fn outcomes_are_counted_by_mode_so_a_dry_run_is_never_a_fix() {
        let metrics = Metrics::new();
        metrics.know_alertnames(["CrmDown"]);
        let judged = |id: u64, kind: &str, dry_run: bool| -> Event {
            serde_json::from_value(serde_json::json!({
                "id": id, "ts": 100.0, "kind": kind, "alertname": "CrmDown", "fingerprint": "f1",
                "plugin": "p", "step": 1, "within_sec": 60.0, "detail": "still firing",
                "time_to_recover_sec": 3.0, "via": "webhook", "dry_run": dry_run
            }))
            .unwrap()
        };
        metrics.observe(&judged(1, "remediation_verified", true));
        metrics.observe(&judged(2, "remediation_ineffective", true));
        metrics.observe(&judged(3, "remediation_verified", false));
        let failed: Event = serde_json::from_value(serde_json::json!({
            "id": 4, "ts": 100.0, "kind": "action_fail", "alertname": "CrmDown",
            "fingerprint": "f1", "status": "firing", "plugin": "p", "plugin_version": "1",
            "dry_run": true, "duration_ms": 1.0, "error": "trap", "logs": [], "targets": [], "calls": []
        }))
        .unwrap();
        metrics.observe(&failed);
        for (series, value) in [
            (
                r#"autoheal_remediations_total{mode="dry_run",outcome="verified",plugin="p"}"#,
                1.0,
            ),
            (
                r#"autoheal_remediations_total{mode="dry_run",outcome="ineffective",plugin="p"}"#,
                1.0,
            ),
            (
                r#"autoheal_remediations_total{mode="real",outcome="verified",plugin="p"}"#,
                1.0,
            ),
            (
                r#"autoheal_time_to_recover_seconds_count{mode="real",plugin="p"}"#,
                1.0,
            ),
            (
                r#"autoheal_time_to_recover_seconds_count{mode="dry_run",plugin="p"}"#,
                1.0,
            ),
            (
                r#"autoheal_action_failures_total{alertname="CrmDown",mode="dry_run"}"#,
                1.0,
            ),
            (
                r#"autoheal_action_failures_total{alertname="CrmDown",mode="real"}"#,
                0.0,
            ),
            (
                r#"autoheal_actions_total{alertname="CrmDown",mode="dry_run",result="fail"}"#,
                1.0,
            ),
            (
                r#"autoheal_actions_total{alertname="CrmDown",mode="real",result="fail"}"#,
                0.0,
            ),
            (
                r#"autoheal_plugin_invocations_total{mode="dry_run",plugin="p",result="fail"}"#,
                1.0,
            ),
        ] {
            assert_eq!(sample(&metrics, series), Some(value), "{series}");
        }
    }
}
