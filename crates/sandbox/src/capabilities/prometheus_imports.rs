//! The `prometheus` interface (0.4.0 on), served by the gate.

use super::prometheus::{PromAnswer, QueryError};
use crate::bindings::v4::prometheus as wit;
use crate::state::HostState;

impl wit::Host for HostState {
    async fn query(&mut self, promql: String, time: Option<f64>) -> Result<wit::Answer, wit::Error> {
        self.gate
            .prometheus_query(promql, time)
            .await
            .map(into_wit)
            .map_err(error)
    }

    async fn query_range(
        &mut self,
        promql: String,
        start: f64,
        end: f64,
        step_seconds: f64,
    ) -> Result<wit::Answer, wit::Error> {
        self.gate
            .prometheus_query_range(promql, start, end, step_seconds)
            .await
            .map(into_wit)
            .map_err(error)
    }
}

fn into_wit(answer: PromAnswer) -> wit::Answer {
    wit::Answer {
        series: answer
            .series
            .into_iter()
            .map(|s| wit::Series {
                labels: s.labels,
                samples: s.samples,
            })
            .collect(),
        truncated: answer.truncated,
    }
}

fn error(e: QueryError) -> wit::Error {
    match e {
        QueryError::Denied(m) => wit::Error::Denied(m),
        QueryError::BadQuery(m) => wit::Error::BadQuery(m),
        QueryError::Failed(m) => wit::Error::Failed(m),
    }
}
