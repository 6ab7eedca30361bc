//! The `prometheus` capability (`wit/prometheus.wit`; its manifest section
//! is `autoheal_manifest::PrometheusGrant`): PromQL queries against the
//! host's `prometheus_url`, answered within the manifest's bounds.
//!
//! | call | allowed by | kind |
//! |---|---|---|
//! | `query` | `[capabilities.prometheus]` | read, at most `max_series`/`max_bytes`, within `timeout` |
//! | `query-range` | `[capabilities.prometheus]` | read, the same bounds, at most 11,000 points a series |
//!
//! Reads are performed in dry-run too: a plugin that checks before it acts
//! must see in a trial what it would see for real. The host's client (the
//! HTTP, the token, the CA) is [`PrometheusSource`], lent by the host.

use autoheal_manifest::PrometheusGrant;

use crate::capability::{CallOutcome, Capability, CapabilityGate, GateError, cut};

pub use super::prometheus_answer::{PromAnswer, PromSeries, parse_answer};

/// Longest PromQL a plugin may send (Prometheus' own limit is far above:
/// a query this long is a plugin building queries from input).
pub const MAX_PROMQL_BYTES: usize = 4096;
/// Bytes of the query kept as a call's target in its record.
const QUERY_IN_RECORD: usize = 200;
/// Points of one series a range query may ask for: Prometheus' own cap
/// (`exceeded maximum resolution of 11,000 points per timeseries`), checked
/// here so that the refusal says which bound it is.
pub const MAX_RANGE_POINTS: f64 = 11_000.0;

/// What a query asks Prometheus.
#[derive(Debug, Clone, PartialEq)]
pub enum PromQuery {
    /// `/api/v1/query` at a time (unix seconds; `None`: now).
    Instant {
        /// The PromQL.
        promql: String,
        /// Evaluation time.
        time: Option<f64>,
    },
    /// `/api/v1/query_range`.
    Range {
        /// The PromQL.
        promql: String,
        /// Unix seconds.
        start: f64,
        /// Unix seconds.
        end: f64,
        /// Seconds between points.
        step: f64,
    },
}

impl PromQuery {
    /// The PromQL asked.
    pub fn promql(&self) -> &str {
        match self {
            Self::Instant { promql, .. } | Self::Range { promql, .. } => promql,
        }
    }
}

/// Why a query has no answer, in the WIT contract's terms.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromError {
    /// Prometheus refused the query (bad PromQL, ...): its message.
    #[error("bad query: {0}")]
    BadQuery(String),
    /// Prometheus could not be reached, did not answer in time, or
    /// answered something that is not its API's.
    #[error("{0}")]
    Failed(String),
}

/// The host's Prometheus, as the gate asks it: one query, within `bounds`
/// (the deadline and the bytes read; the series are cut by the gate's
/// parse of what was read).
#[async_trait::async_trait]
pub trait PrometheusSource: Send + Sync {
    /// Sends `query`, reads at most `bounds.max_bytes` of the answer, and
    /// parses it ([`parse_answer`]).
    async fn query(&self, query: &PromQuery, bounds: &PrometheusGrant) -> Result<PromAnswer, PromError>;
}

/// A host with no Prometheus (tools, tests): every query fails, saying so.
pub struct NoPrometheus;

#[async_trait::async_trait]
impl PrometheusSource for NoPrometheus {
    async fn query(&self, _query: &PromQuery, _bounds: &PrometheusGrant) -> Result<PromAnswer, PromError> {
        Err(PromError::Failed("this host has no Prometheus to query".into()))
    }
}

/// An error answered to the plugin by a `prometheus` call.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryError {
    /// Not allowed, or past a bound.
    Denied(String),
    /// Prometheus refused the query.
    BadQuery(String),
    /// Prometheus failed.
    Failed(String),
}

impl From<GateError> for QueryError {
    fn from(e: GateError) -> Self {
        match e {
            GateError::Denied(m) => Self::Denied(m),
            GateError::NotFound(m) | GateError::Runtime(m) | GateError::Timeout(m) => Self::Failed(m),
        }
    }
}

impl CapabilityGate {
    /// `prometheus.query`, if the manifest has `[capabilities.prometheus]`.
    pub async fn prometheus_query(
        &mut self,
        promql: String,
        time: Option<f64>,
    ) -> Result<PromAnswer, QueryError> {
        const CAPABILITY: Capability = Capability::PrometheusQuery;
        self.begin()?;
        let bounds = self.prometheus_bounds(CAPABILITY, &promql)?;
        if time.is_some_and(|t| !t.is_finite() || t < 0.0) {
            return Err(self
                .deny(CAPABILITY, target(&promql), "`time` must be unix seconds".into())
                .into());
        }
        self.ask_prometheus(CAPABILITY, PromQuery::Instant { promql, time }, bounds)
            .await
    }

    /// `prometheus.query-range`, if the manifest has `[capabilities.prometheus]`
    /// and the range has at most `MAX_RANGE_POINTS` points.
    pub async fn prometheus_query_range(
        &mut self,
        promql: String,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<PromAnswer, QueryError> {
        const CAPABILITY: Capability = Capability::PrometheusQueryRange;
        self.begin()?;
        let bounds = self.prometheus_bounds(CAPABILITY, &promql)?;
        if let Err(reason) = check_range(start, end, step) {
            return Err(self.deny(CAPABILITY, target(&promql), reason).into());
        }
        let query = PromQuery::Range {
            promql,
            start,
            end,
            step,
        };
        self.ask_prometheus(CAPABILITY, query, bounds).await
    }

    /// The manifest's bounds, if it allows queries and `promql` is one a
    /// plugin may send.
    fn prometheus_bounds(
        &mut self,
        capability: Capability,
        promql: &str,
    ) -> Result<PrometheusGrant, GateError> {
        let Some(bounds) = self.prometheus_grant else {
            return Err(self.deny(
                capability,
                target(promql),
                "the manifest has no [capabilities.prometheus]".into(),
            ));
        };
        if promql.trim().is_empty() || promql.len() > MAX_PROMQL_BYTES || promql.contains('\0') {
            return Err(self.deny(
                capability,
                target(promql),
                format!(
                    "a query must be 1 to {MAX_PROMQL_BYTES} bytes of PromQL, is {}",
                    promql.len()
                ),
            ));
        }
        Ok(bounds)
    }

    /// Asks the host's Prometheus, within the manifest's deadline (the
    /// source's own is the same; this one holds whatever the source does).
    async fn ask_prometheus(
        &mut self,
        capability: Capability,
        query: PromQuery,
        bounds: PrometheusGrant,
    ) -> Result<PromAnswer, QueryError> {
        let source = self.services.prometheus.clone();
        let answer = match tokio::time::timeout(bounds.timeout, source.query(&query, &bounds)).await {
            Ok(answer) => answer,
            Err(_) => Err(PromError::Failed(format!(
                "Prometheus did not answer within the manifest's timeout of {}",
                humantime::format_duration(bounds.timeout)
            ))),
        };
        let target = target(query.promql());
        match answer {
            Ok(answer) => {
                let samples: usize = answer.series.iter().map(|s| s.samples.len()).sum();
                let detail = format!(
                    "{} series, {samples} samples{}",
                    answer.series.len(),
                    if answer.truncated { ", truncated" } else { "" }
                );
                self.record(capability, target, CallOutcome::Ok, Some(detail));
                Ok(answer)
            }
            Err(e) => {
                self.record(capability, target, CallOutcome::Failed, Some(e.to_string()));
                Err(match e {
                    PromError::BadQuery(m) => QueryError::BadQuery(m),
                    PromError::Failed(m) => QueryError::Failed(m),
                })
            }
        }
    }
}

/// The query as a record's target: bounded.
fn target(promql: &str) -> String {
    cut(promql.to_owned(), QUERY_IN_RECORD)
}

/// A range Prometheus can answer and the plugin may ask.
fn check_range(start: f64, end: f64, step: f64) -> Result<(), String> {
    if ![start, end, step].iter().all(|v| v.is_finite()) || start < 0.0 {
        return Err("`start`, `end` and `step-seconds` must be finite, `start` unix seconds".into());
    }
    if end < start {
        return Err(format!("`end` ({end}) is before `start` ({start})"));
    }
    if step <= 0.0 {
        return Err(format!("`step-seconds` ({step}) must be more than 0"));
    }
    let points = (end - start) / step + 1.0;
    if points > MAX_RANGE_POINTS {
        return Err(format!(
            "{points:.0} points a series: at most {MAX_RANGE_POINTS} (make `step-seconds` longer)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    use crate::capability::{Breakers, ExecutionMode, HostServices, NoIntentLog};
    use autoheal_containers::FakeRuntime;

    /// Answers what it was given and remembers what it was asked.
    struct Canned {
        answer: Result<PromAnswer, PromError>,
        asked: Mutex<Vec<PromQuery>>,
    }

    #[async_trait::async_trait]
    impl PrometheusSource for Canned {
        async fn query(&self, query: &PromQuery, _bounds: &PrometheusGrant) -> Result<PromAnswer, PromError> {
            self.asked.lock().unwrap().push(query.clone());
            self.answer.clone()
        }
    }

    fn gate(grant: Option<PrometheusGrant>, source: Arc<Canned>, mode: ExecutionMode) -> CapabilityGate {
        let services = HostServices {
            prometheus: source,
            ..HostServices::offline(
                Arc::new(FakeRuntime::new()),
                Breakers::with_limit(1),
                Arc::new(NoIntentLog),
            )
        };
        CapabilityGate::without_containers(mode, services).with_grants(grant, None)
    }

    fn canned(answer: Result<PromAnswer, PromError>) -> Arc<Canned> {
        Arc::new(Canned {
            answer,
            asked: Mutex::new(Vec::new()),
        })
    }

    fn one_series() -> PromAnswer {
        PromAnswer {
            series: vec![PromSeries {
                labels: vec![("job".into(), "x".into())],
                samples: vec![(1.0, 1.0)],
            }],
            truncated: false,
        }
    }

    #[tokio::test]
    async fn without_the_section_a_query_is_denied_and_never_sent() {
        let source = canned(Ok(one_series()));
        let mut gate = gate(None, source.clone(), ExecutionMode::Real);
        let err = gate.prometheus_query("up".into(), None).await.unwrap_err();
        assert!(
            matches!(&err, QueryError::Denied(m) if m.contains("[capabilities.prometheus]")),
            "{err:?}"
        );
        assert!(source.asked.lock().unwrap().is_empty());
        assert_eq!(gate.calls()[0].outcome, CallOutcome::Denied);
    }

    #[tokio::test]
    async fn a_query_is_a_read_performed_in_dry_run_and_recorded() {
        let source = canned(Ok(one_series()));
        let mut gate = gate(
            Some(PrometheusGrant::default()),
            source.clone(),
            ExecutionMode::DryRun,
        );
        let answer = gate.prometheus_query("up".into(), Some(10.0)).await.unwrap();
        assert_eq!(answer.series.len(), 1);
        let call = &gate.calls()[0];
        assert_eq!(
            (call.capability, call.outcome),
            (Capability::PrometheusQuery, CallOutcome::Ok)
        );
        assert_eq!(call.target, "up");
        assert_eq!(call.detail.as_deref(), Some("1 series, 1 samples"));
        assert_eq!(
            source.asked.lock().unwrap()[0],
            PromQuery::Instant {
                promql: "up".into(),
                time: Some(10.0)
            }
        );
    }

    #[tokio::test]
    async fn bad_queries_and_failures_keep_their_kind() {
        let source = canned(Err(PromError::BadQuery("parse error".into())));
        let mut gate = gate(Some(PrometheusGrant::default()), source, ExecutionMode::Real);
        let err = gate.prometheus_query("up{".into(), None).await.unwrap_err();
        assert_eq!(err, QueryError::BadQuery("parse error".into()));
        assert_eq!(gate.calls()[0].outcome, CallOutcome::Failed);
        assert_eq!(gate.calls()[0].detail.as_deref(), Some("bad query: parse error"));

        let source = canned(Err(PromError::Failed("connection refused".into())));
        let mut second = self::gate(Some(PrometheusGrant::default()), source, ExecutionMode::Real);
        let err = second.prometheus_query("up".into(), None).await.unwrap_err();
        assert_eq!(err, QueryError::Failed("connection refused".into()));
    }

    #[tokio::test]
    async fn ranges_and_queries_past_the_bounds_are_denied() {
        let source = canned(Ok(one_series()));
        let mut gate = gate(
            Some(PrometheusGrant::default()),
            source.clone(),
            ExecutionMode::Real,
        );
        for (start, end, step, says) in [
            (100.0, 50.0, 1.0, "before"),
            (0.0, 100.0, 0.0, "more than 0"),
            (0.0, 100_000.0, 1.0, "points"),
            (f64::NAN, 1.0, 1.0, "finite"),
        ] {
            let err = gate
                .prometheus_query_range("up".into(), start, end, step)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, QueryError::Denied(m) if m.contains(says)),
                "{err:?}"
            );
        }
        let long = "x".repeat(MAX_PROMQL_BYTES + 1);
        assert!(matches!(
            gate.prometheus_query(long, None).await,
            Err(QueryError::Denied(_))
        ));
        assert!(source.asked.lock().unwrap().is_empty());
        // The long query's record is bounded.
        assert!(gate.calls().last().unwrap().target.len() < 300);
        gate.prometheus_query_range("up".into(), 0.0, 60.0, 15.0)
            .await
            .unwrap();
        assert_eq!(source.asked.lock().unwrap().len(), 1);
    }
}
