//! PromQL queries against the host's Prometheus (`prometheus_url`), when
//! the manifest has `[capabilities.prometheus]`. Reads: performed in
//! dry-run too, within the manifest's timeout and bounds.
//!
//! The questions a remediation asks before it acts have helpers: "is it
//! still failing?" ([`still_failing`], [`any_above`], [`any_below`],
//! [`value`]) and "is the alert still firing?" ([`is_firing`]).
//!
//! ```no_run
//! use autoheal_sdk::prometheus;
//!
//! // Still down? (the probe of crm-api answers 0 while it fails)
//! let down = prometheus::any_below(r#"probe_success{job="crm-api"}"#, 1.0)
//!     .map_err(|e| e.to_string())?;
//! # Ok::<(), String>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;

use crate::host;
use crate::template::promql_string;

/// One series of an answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Its labels (`__name__` too, when Prometheus gives it).
    pub labels: BTreeMap<String, String>,
    /// `(unix seconds, value)`, oldest first: one for an instant query.
    pub samples: Vec<(f64, f64)>,
}

impl Series {
    /// A series with these labels and one sample (what a test scripts).
    pub fn sample(labels: &[(&str, &str)], value: f64) -> Self {
        Series {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            samples: vec![(0.0, value)],
        }
    }

    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    /// Its newest value.
    pub fn value(&self) -> Option<f64> {
        self.samples.last().map(|(_, v)| *v)
    }
}

/// What a query answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// The series, as Prometheus ordered them.
    pub series: Vec<Series>,
    /// More series came back than the manifest's `max_series`; these are
    /// the first of them.
    pub truncated: bool,
}

impl Answer {
    /// The newest value of the first series; `None` when no series came back.
    pub fn value(&self) -> Option<f64> {
        self.series.first().and_then(Series::value)
    }

    /// `true` when the newest value of some series is above `threshold`.
    pub fn any_above(&self, threshold: f64) -> bool {
        self.series
            .iter()
            .any(|s| s.value().is_some_and(|v| v > threshold))
    }

    /// `true` when the newest value of some series is below `threshold`.
    pub fn any_below(&self, threshold: f64) -> bool {
        self.series
            .iter()
            .any(|s| s.value().is_some_and(|v| v < threshold))
    }
}

/// Why a query failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// No `[capabilities.prometheus]`, or a host guard refused the call.
    Denied(String),
    /// Prometheus refused the query (bad PromQL, ...): its message.
    BadQuery(String),
    /// Prometheus could not be reached or did not answer in time.
    Failed(String),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Denied(msg) => write!(f, "denied: {msg}"),
            QueryError::BadQuery(msg) => write!(f, "bad query: {msg}"),
            QueryError::Failed(msg) => write!(f, "failed: {msg}"),
        }
    }
}

impl std::error::Error for QueryError {}

/// An instant query, now.
pub fn query(promql: &str) -> Result<Answer, QueryError> {
    host::prometheus_query(promql, None)
}

/// An instant query at `time` (unix seconds).
pub fn query_at(promql: &str, time: f64) -> Result<Answer, QueryError> {
    host::prometheus_query(promql, Some(time))
}

/// A range query from `start` to `end` (unix seconds) every `step_seconds`.
pub fn query_range(promql: &str, start: f64, end: f64, step_seconds: f64) -> Result<Answer, QueryError> {
    host::prometheus_query_range(promql, start, end, step_seconds)
}

/// The one value of `promql` now; `None` when it returns no series. Several
/// series are a [`QueryError::BadQuery`]: which one would be "the" value is
/// not for the SDK to guess — aggregate them (`max(...)`).
pub fn value(promql: &str) -> Result<Option<f64>, QueryError> {
    let answer = query(promql)?;
    match answer.series.len() {
        0 | 1 => Ok(answer.value()),
        n => Err(QueryError::BadQuery(format!(
            "{promql} returned {n} series where one value was asked for: aggregate them (max(...), sum(...))"
        ))),
    }
}

/// Whether the condition `expr`, written as an alerting rule's
/// (`probe_success{job="crm"} == 0`), still returns a series now, whatever
/// its value. A bare `probe_success` returns one while healthy too: compare
/// it, or ask [`any_below`].
pub fn still_failing(expr: &str) -> Result<bool, QueryError> {
    Ok(!query(expr)?.series.is_empty())
}

/// Whether some series of `promql` is above `threshold` now ("is the error
/// rate still high?").
pub fn any_above(promql: &str, threshold: f64) -> Result<bool, QueryError> {
    Ok(query(promql)?.any_above(threshold))
}

/// Whether some series of `promql` is below `threshold` now ("is the probe
/// still failing?": `probe_success` below 1).
pub fn any_below(promql: &str, threshold: f64) -> Result<bool, QueryError> {
    Ok(query(promql)?.any_below(threshold))
}

/// Whether Prometheus still has the alert `alertname` firing with these
/// labels (its `ALERTS` series): the alert as Alertmanager sent it may be
/// minutes old.
pub fn is_firing(alertname: &str, labels: &[(&str, &str)]) -> Result<bool, QueryError> {
    let mut matchers = vec![
        format!("alertname=\"{}\"", promql_string(alertname)),
        "alertstate=\"firing\"".to_owned(),
    ];
    matchers.extend(
        labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", promql_string(v))),
    );
    Ok(!query(&format!("ALERTS{{{}}}", matchers.join(",")))?
        .series
        .is_empty())
}

/// The WIT types, turned into this module's.
mod wit_types {
    use super::*;
    use crate::bindings::autoheal::plugin::prometheus as wit;

    impl From<wit::Answer> for Answer {
        fn from(a: wit::Answer) -> Self {
            Answer {
                series: a
                    .series
                    .into_iter()
                    .map(|s| Series {
                        labels: s.labels.into_iter().collect(),
                        samples: s.samples,
                    })
                    .collect(),
                truncated: a.truncated,
            }
        }
    }

    impl From<wit::Error> for QueryError {
        fn from(e: wit::Error) -> Self {
            match e {
                wit::Error::Denied(m) => QueryError::Denied(m),
                wit::Error::BadQuery(m) => QueryError::BadQuery(m),
                wit::Error::Failed(m) => QueryError::Failed(m),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_tells_its_values() {
        let answer = Answer {
            series: vec![
                Series::sample(&[("instance", "a")], 0.0),
                Series {
                    labels: Default::default(),
                    samples: vec![(1.0, 5.0), (2.0, 0.5)],
                },
            ],
            truncated: false,
        };
        assert_eq!(answer.value(), Some(0.0));
        assert_eq!(answer.series[1].value(), Some(0.5), "the newest sample");
        assert!(answer.any_below(1.0) && !answer.any_above(1.0));
        assert!(answer.any_above(0.4));
        assert_eq!(answer.series[0].label("instance"), Some("a"));
        assert_eq!(Answer::default().value(), None);
        assert!(!Answer::default().any_below(f64::MAX), "no series is not failing");
    }

    #[test]
    fn errors_say_their_kind() {
        assert_eq!(
            QueryError::BadQuery("parse".into()).to_string(),
            "bad query: parse"
        );
    }
}
