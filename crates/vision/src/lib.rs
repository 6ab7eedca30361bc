//! The unified operations view ("AetherVision"): SLO runway, firing
//! alerts, probes and autoheal's own state in one report.
//!
//! The numbers are computed by Prometheus' recording rules
//! (`monitoring/rules/slo_payment_rate.rules.yml`, `aethervision.rules.yml`);
//! this module only reads them, with the firing alerts from Alertmanager, so
//! the console, `GET /vision` and `autoheal vision` show what the rules and
//! alerts see. A source that cannot be read is reported as such — its part of
//! the report is `null`, never zeros.

#![warn(missing_docs)]

mod alertmanager;
mod prometheus;
mod text;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use autoheal_core::mode::ExecutionMode;
use autoheal_core::util::{DurationError, error_chain, parse_duration};

pub use alertmanager::{FiringAlert, firing_alerts, unresolved_fingerprints};
pub use prometheus::{Point, Prometheus, RuleCounts};
pub use text::render_text;

/// The SLO window the rules use (30 days).
pub const WINDOW_HOURS: f64 = 720.0;
/// The rules cap the runway here when nothing burns the budget.
pub const NO_BREACH_DAYS: f64 = 365.0;
/// Default span of the runway trend.
pub const DEFAULT_TREND_RANGE: Duration = Duration::from_secs(6 * 3600);
/// Longest trend span accepted.
pub const MAX_TREND_RANGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Points per trend series, at most (the step grows with the range).
const TREND_POINTS: u64 = 360;
/// Firing alerts listed in the report (all are counted).
const ALERT_LIST_LIMIT: usize = 20;

/// Every series the view reads, in one instant query.
const INSTANT_QUERY: &str = r#"{__name__=~"slo:payment_rate:.+|aethervision:.+"}"#;
/// The three runway series of the trend.
const TREND_QUERY: &str = r#"{__name__=~"slo:payment_rate:hours_to_breach(_1h|_6h)?"}"#;

/// Why Prometheus or Alertmanager could not be read. The messages leave
/// the URL out: the report shows it next to them.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// No connection, or no answer in time.
    #[error("{message}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// An HTTP error status.
    #[error("answered HTTP {status}: {message}")]
    Refused {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The body of the answer, shortened.
        message: String,
    },
    /// An answer that is not what the API promises.
    #[error("unexpected answer: {message}")]
    BadAnswer {
        /// The URL asked.
        url: String,
        /// What was wrong.
        message: String,
    },
}

/// Alertmanager as the report shows it when no member answered: every URL
/// asked, and the error of the last one (its URL named when there are several).
fn alertmanager_unreachable(urls: &[String], error: &SourceError) -> Source {
    let error = match urls {
        [_] => error.to_string(),
        _ => format!("no member answered; {}: {error}", error.url()),
    };
    Source {
        url: urls.join(", "),
        reachable: false,
        error: Some(error),
    }
}

impl SourceError {
    /// The URL asked.
    pub fn url(&self) -> &str {
        match self {
            SourceError::Unreachable { url, .. }
            | SourceError::Refused { url, .. }
            | SourceError::BadAnswer { url, .. } => url,
        }
    }

    fn unreachable(url: &str, error: reqwest::Error) -> Self {
        SourceError::Unreachable {
            url: url.to_owned(),
            message: error_chain(&error.without_url()),
        }
    }

    fn bad_answer(url: &str, message: &str) -> Self {
        SourceError::BadAnswer {
            url: url.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// The whole view. See `docs/vision.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisionReport {
    /// When the report was made (RFC 3339).
    pub generated_at: String,
    /// Whether Prometheus answered, and its rule counts.
    pub prometheus: PrometheusSource,
    /// Whether Alertmanager answered.
    pub alertmanager: Source,
    /// `None` when Prometheus could not be read.
    pub slo: Option<Slo>,
    /// How the runway moved over the trend range.
    pub runway_trend: Option<RunwayTrend>,
    /// `None` when Alertmanager could not be read.
    pub alerts: Option<AlertSummary>,
    /// The synthetic probes' `up`, when Prometheus has them.
    pub probes: Option<Probes>,
    /// autoheal's own state.
    pub autoheal: AutohealState,
}

/// One source the report reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// Its base URL.
    pub url: String,
    /// Whether it answered.
    pub reachable: bool,
    /// Why not, when it did not.
    pub error: Option<String>,
}

/// Prometheus as a source, with the rules it has loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrometheusSource {
    /// Whether it answered.
    #[serde(flatten)]
    pub source: Source,
    /// Recording and alerting rules loaded, when it answered.
    pub rules: Option<RuleCounts>,
}

/// The payment SLO and its error-budget runway, from the recording rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// The objective, e.g. `0.995`.
    pub objective: Option<f64>,
    /// The SLO window in hours.
    pub window_hours: f64,
    /// Days until the budget is gone at the conservative burn rate.
    pub days_to_breach: Option<f64>,
    /// The same in hours.
    pub hours_to_breach: Option<f64>,
    /// Hours until the budget is gone at the last hour's burn rate.
    pub hours_to_breach_1h: Option<f64>,
    /// Hours until the budget is gone at the last six hours' burn rate.
    pub hours_to_breach_6h: Option<f64>,
    /// The fraction of the error budget left.
    pub error_budget_remaining: Option<f64>,
    /// Burn rate over the last hour.
    pub burn_rate_1h: Option<f64>,
    /// Burn rate over the last six hours.
    pub burn_rate_6h: Option<f64>,
    /// The runway's colour.
    pub status: RunwayStatus,
    /// The runway is at the rules' cap: nothing burns the budget.
    pub no_breach_foreseen: bool,
}

/// The original dashboard's colours for days to breach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunwayStatus {
    /// Under 5 days.
    Red,
    /// 5 to 10 days.
    Orange,
    /// 10 to 20 days.
    Yellow,
    /// 20 days or more.
    Green,
    /// No payment series: nothing to predict from.
    NoData,
}

impl RunwayStatus {
    /// The colour for this many days to breach.
    pub fn for_days(days: Option<f64>) -> Self {
        match days {
            None => RunwayStatus::NoData,
            Some(d) if d < 5.0 => RunwayStatus::Red,
            Some(d) if d < 10.0 => RunwayStatus::Orange,
            Some(d) if d < 20.0 => RunwayStatus::Yellow,
            Some(_) => RunwayStatus::Green,
        }
    }

    /// The colour's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunwayStatus::Red => "red",
            RunwayStatus::Orange => "orange",
            RunwayStatus::Yellow => "yellow",
            RunwayStatus::Green => "green",
            RunwayStatus::NoData => "no_data",
        }
    }
}

/// The runway over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunwayTrend {
    /// The span covered, in seconds.
    pub range_sec: u64,
    /// Seconds between points.
    pub step_sec: u64,
    /// `1h`, `6h` and `conservative`: `[unix seconds, hours]` points.
    pub series: BTreeMap<String, Vec<Point>>,
}

/// Alertmanager's firing alerts, counted by severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertSummary {
    /// Firing alerts in all.
    pub firing: usize,
    /// With `severity="critical"`.
    pub critical: usize,
    /// With `severity="warning"`.
    pub warning: usize,
    /// With `severity="info"`.
    pub info: usize,
    /// Alerts with another severity, or none.
    pub other: usize,
    /// The most severe first, at most 20.
    pub list: Vec<FiringAlert>,
}

/// The synthetic probes, as fractions of targets up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probes {
    /// HTTP probes.
    pub http_up: Option<f64>,
    /// TCP probes.
    pub tcp_up: Option<f64>,
    /// All scrape targets.
    pub up: Option<f64>,
}

/// autoheal's state: from the host itself (`GET /vision`), or as Prometheus
/// last scraped it (`autoheal vision`, which runs without the host).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutohealState {
    /// `host` or `prometheus`.
    pub source: String,
    /// The kill switch.
    pub enabled: Option<bool>,
    /// Unknown (`None`) when read from Prometheus.
    pub dry_run: Option<bool>,
    /// Whether actions run for real.
    pub mode: Option<ExecutionMode>,
    /// Unix time of the last action.
    pub last_action_epoch: Option<f64>,
    /// `None`: never acted (or unknown).
    pub last_action_age_sec: Option<f64>,
}

/// Where to read from.
pub struct Sources<'a> {
    /// The HTTP client.
    pub client: &'a reqwest::Client,
    /// Prometheus's base URL.
    pub prometheus_url: &'a str,
    /// Alertmanager's members (one, or an HA cluster's), asked in turn.
    pub alertmanager: &'a autoheal_core::failover::Members,
    /// Span of the runway trend; `None` skips the range query (a report
    /// without `runway_trend`, for output that does not show it).
    pub trend_range: Option<Duration>,
}

/// Reads Prometheus and Alertmanager (concurrently) and assembles the view.
/// `autoheal` is the host's own state; `None` takes it from Prometheus.
pub async fn collect(sources: &Sources<'_>, autoheal: Option<AutohealState>) -> VisionReport {
    let now = chrono::Utc::now();
    let now_sec = now.timestamp_millis() as f64 / 1000.0;
    let prometheus = Prometheus::new(sources.client, sources.prometheus_url);
    let trend_query = async {
        match sources.trend_range {
            Some(range) => {
                let step = trend_step(range);
                let series = prometheus.range_by_name(TREND_QUERY, now_sec, range, step).await;
                Some(series.map(|series| (range, step, series)))
            }
            None => None,
        }
    };
    let (instant, trend, rules, alerts) = tokio::join!(
        prometheus.instant_by_name(INSTANT_QUERY),
        trend_query,
        prometheus.rules(),
        firing_alerts(sources.client, sources.alertmanager),
    );

    // Prometheus is reachable when its main query worked; the other two
    // calls' errors are reported, but do not blank the values.
    let (values, prometheus_error) = match instant {
        Ok(values) => (
            Some(values),
            trend
                .as_ref()
                .and_then(|t| t.as_ref().err())
                .or(rules.as_ref().err())
                .map(|e| e.to_string()),
        ),
        Err(e) => (None, Some(e.to_string())),
    };
    let autoheal = autoheal.unwrap_or_else(|| autoheal_from_prometheus(values.as_ref(), now_sec));
    let prometheus_source = PrometheusSource {
        source: Source {
            url: sources.prometheus_url.to_owned(),
            reachable: values.is_some(),
            error: prometheus_error,
        },
        rules: rules.ok(),
    };
    let alertmanager = match &alerts {
        // The member that answered.
        Ok((url, _)) => Source {
            url: url.clone(),
            reachable: true,
            error: None,
        },
        Err(e) => alertmanager_unreachable(sources.alertmanager.urls(), e),
    };
    let alerts = alerts.ok().map(|(_, alerts)| summarize_alerts(alerts));
    let runway_trend = match (&values, trend) {
        (Some(_), Some(Ok((range, step, series)))) => Some(RunwayTrend {
            range_sec: range.as_secs(),
            step_sec: step.as_secs(),
            series: series
                .into_iter()
                .filter_map(|(name, points)| Some((trend_label(&name)?.to_owned(), points)))
                .collect(),
        }),
        _ => None,
    };
    VisionReport {
        generated_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        prometheus: prometheus_source,
        alertmanager,
        slo: values.as_ref().map(slo_from),
        runway_trend,
        alerts,
        probes: values.as_ref().map(probes_from),
        autoheal,
    }
}

/// The host's own state, for `GET /vision`.
pub fn autoheal_from_host(
    enabled: bool,
    dry_run: bool,
    mode: ExecutionMode,
    last_action_epoch: f64,
) -> AutohealState {
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let last = (last_action_epoch > 0.0).then_some(last_action_epoch);
    AutohealState {
        source: "host".into(),
        enabled: Some(enabled),
        dry_run: Some(dry_run),
        mode: Some(mode),
        last_action_epoch: last,
        last_action_age_sec: last.map(|t| (now - t).max(0.0)),
    }
}

fn autoheal_from_prometheus(values: Option<&BTreeMap<String, Option<f64>>>, now: f64) -> AutohealState {
    let get = |name: &str| values.and_then(|v| v.get(name).copied().flatten());
    let age = get("aethervision:autoheal_last_action_age");
    AutohealState {
        source: "prometheus".into(),
        enabled: get("aethervision:autoheal_enabled").map(|v| v >= 1.0),
        dry_run: None,
        mode: None,
        last_action_epoch: age.map(|age| now - age),
        last_action_age_sec: age,
    }
}

fn slo_from(values: &BTreeMap<String, Option<f64>>) -> Slo {
    let get = |name: &str| values.get(&format!("slo:payment_rate:{name}")).copied().flatten();
    let days = get("days_to_breach");
    Slo {
        objective: get("objective"),
        window_hours: WINDOW_HOURS,
        days_to_breach: days,
        hours_to_breach: get("hours_to_breach"),
        hours_to_breach_1h: get("hours_to_breach_1h"),
        hours_to_breach_6h: get("hours_to_breach_6h"),
        error_budget_remaining: get("error_budget_remaining"),
        burn_rate_1h: get("burn_rate_1h"),
        burn_rate_6h: get("burn_rate_6h"),
        status: RunwayStatus::for_days(days),
        no_breach_foreseen: days.is_some_and(|d| d >= NO_BREACH_DAYS),
    }
}

fn probes_from(values: &BTreeMap<String, Option<f64>>) -> Probes {
    let get = |name: &str| values.get(name).copied().flatten();
    let http = get("aethervision:probes_http_up");
    let tcp = get("aethervision:probes_tcp_up");
    Probes {
        http_up: http,
        tcp_up: tcp,
        up: match (http, tcp) {
            (None, None) => None,
            (h, t) => Some(h.unwrap_or(0.0) + t.unwrap_or(0.0)),
        },
    }
}

fn summarize_alerts(alerts: Vec<FiringAlert>) -> AlertSummary {
    let count = |severity: &str| alerts.iter().filter(|a| a.severity == severity).count();
    let (critical, warning, info) = (count("critical"), count("warning"), count("info"));
    AlertSummary {
        firing: alerts.len(),
        critical,
        warning,
        info,
        other: alerts.len() - critical - warning - info,
        list: alerts.into_iter().take(ALERT_LIST_LIMIT).collect(),
    }
}

fn trend_label(name: &str) -> Option<&'static str> {
    match name {
        "slo:payment_rate:hours_to_breach_1h" => Some("1h"),
        "slo:payment_rate:hours_to_breach_6h" => Some("6h"),
        "slo:payment_rate:hours_to_breach" => Some("conservative"),
        _ => None,
    }
}

/// A step that gives at most `TREND_POINTS` points, and at least 1 s.
pub fn trend_step(range: Duration) -> Duration {
    Duration::from_secs(range.as_secs().div_ceil(TREND_POINTS).max(1))
}

/// A `range` that cannot be used for the runway trend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Not a duration at all.
    #[error(transparent)]
    NotADuration(#[from] DurationError),
    /// Shorter than a minute or longer than [`MAX_TREND_RANGE`].
    #[error("range {0:?} must be between 1m and 7d")]
    OutOfBounds(String),
}

/// `range` of `GET /vision?range=` and `autoheal vision --range`.
pub fn parse_trend_range(text: &str) -> Result<Duration, RangeError> {
    let range = parse_duration(text)?;
    if range < Duration::from_secs(60) || range > MAX_TREND_RANGE {
        return Err(RangeError::OutOfBounds(text.to_owned()));
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_core::failover::Failure;

    #[test]
    fn an_alertmanager_cluster_none_of_whose_members_answered_is_shown_whole() {
        let error = SourceError::Refused {
            url: "http://am-1:9093".into(),
            status: 503,
            message: "not ready".into(),
        };
        let one = alertmanager_unreachable(&["http://am-1:9093".into()], &error);
        assert_eq!(one.url, "http://am-1:9093");
        assert_eq!(one.error.as_deref(), Some("answered HTTP 503: not ready"));
        let pair = alertmanager_unreachable(&["http://am-0:9093".into(), "http://am-1:9093".into()], &error);
        assert_eq!(pair.url, "http://am-0:9093, http://am-1:9093");
        assert_eq!(
            pair.error.as_deref(),
            Some("no member answered; http://am-1:9093: answered HTTP 503: not ready")
        );
        assert!(!pair.reachable);
    }

    #[test]
    fn only_an_alertmanager_that_did_not_answer_sends_the_read_to_the_next_member() {
        let refused = |status| SourceError::Refused {
            url: "http://am".into(),
            status,
            message: String::new(),
        };
        assert!(refused(500).try_next() && refused(503).try_next());
        assert!(!refused(400).try_next() && !refused(404).try_next());
        assert!(SourceError::bad_answer("http://am", "not JSON").try_next());
    }

    #[test]
    fn runway_colours_follow_the_original_thresholds() {
        let cases = [
            (None, RunwayStatus::NoData),
            (Some(0.0), RunwayStatus::Red),
            (Some(4.99), RunwayStatus::Red),
            (Some(5.0), RunwayStatus::Orange),
            (Some(9.9), RunwayStatus::Orange),
            (Some(10.0), RunwayStatus::Yellow),
            (Some(19.99), RunwayStatus::Yellow),
            (Some(20.0), RunwayStatus::Green),
            (Some(365.0), RunwayStatus::Green),
        ];
        for (days, status) in cases {
            assert_eq!(RunwayStatus::for_days(days), status, "{days:?}");
        }
    }

    #[test]
    fn slo_reads_the_recorded_series_and_flags_the_cap() {
        let values: BTreeMap<String, Option<f64>> = [
            ("slo:payment_rate:days_to_breach", Some(365.0)),
            ("slo:payment_rate:hours_to_breach", Some(8760.0)),
            ("slo:payment_rate:objective", Some(0.995)),
            ("slo:payment_rate:burn_rate_1h", None),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let slo = slo_from(&values);
        assert_eq!(slo.days_to_breach, Some(365.0));
        assert_eq!(slo.objective, Some(0.995));
        assert_eq!(slo.burn_rate_1h, None);
        assert_eq!(slo.hours_to_breach_6h, None);
        assert!(slo.no_breach_foreseen);
        assert_eq!(slo.status, RunwayStatus::Green);
        assert_eq!(slo_from(&BTreeMap::new()).status, RunwayStatus::NoData);
    }

    #[test]
    fn alerts_are_counted_by_severity() {
        let alert = |severity: &str| FiringAlert {
            alertname: "A".into(),
            severity: severity.into(),
            starts_at: String::new(),
            summary: String::new(),
        };
        let many: Vec<_> = ["critical", "warning", "warning", "info", "", "page"]
            .iter()
            .map(|s| alert(s))
            .chain((0..30).map(|_| alert("warning")))
            .collect();
        let summary = summarize_alerts(many);
        assert_eq!(
            (
                summary.firing,
                summary.critical,
                summary.warning,
                summary.info,
                summary.other
            ),
            (36, 1, 32, 1, 2)
        );
        assert_eq!(summary.list.len(), ALERT_LIST_LIMIT);
    }

    #[test]
    fn probes_add_up_and_absent_is_not_zero() {
        let values = |pairs: &[(&str, f64)]| -> BTreeMap<String, Option<f64>> {
            pairs.iter().map(|(k, v)| (k.to_string(), Some(*v))).collect()
        };
        let probes = probes_from(&values(&[
            ("aethervision:probes_http_up", 4.0),
            ("aethervision:probes_tcp_up", 2.0),
        ]));
        assert_eq!(probes.up, Some(6.0));
        assert_eq!(probes_from(&values(&[])).up, None);
    }

    #[test]
    fn trend_ranges_and_steps() {
        assert_eq!(trend_step(Duration::from_secs(6 * 3600)), Duration::from_secs(60));
        assert_eq!(trend_step(Duration::from_secs(60)), Duration::from_secs(1));
        assert_eq!(parse_trend_range("15m").unwrap(), Duration::from_secs(900));
        assert!(parse_trend_range("10s").is_err());
        assert!(parse_trend_range("30d").is_err());
        assert!(parse_trend_range("soon").is_err());
    }
}
