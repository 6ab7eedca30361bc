//! The few calls of Prometheus' HTTP API (`/api/v1/...`) the operations view
//! needs: one instant query, one range query and the rule list.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::SourceError;

/// How long one Prometheus request may take: the view is for a person
/// waiting on a page, and a Prometheus that slow is as good as down.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A point of a range query: unix seconds and value.
pub type Point = (f64, f64);

/// How many rules Prometheus has loaded, and how many failed to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleCounts {
    /// Recording rules.
    pub recording: usize,
    /// Alerting rules.
    pub alerting: usize,
    /// Rules whose last evaluation failed (`health: "err"`).
    pub failing: usize,
}

/// Prometheus's HTTP API.
pub struct Prometheus<'a> {
    client: &'a reqwest::Client,
    base: &'a str,
}

/// The `{"status": "...", "data": ..., "error": ...}` envelope of every answer.
#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    error: Option<String>,
}

impl<'a> Prometheus<'a> {
    /// A client for the Prometheus at `url`.
    pub fn new(client: &'a reqwest::Client, url: &'a str) -> Self {
        Prometheus {
            client,
            base: url.trim_end_matches('/'),
        }
    }

    /// The value of every series `expr` selects, by metric name. Series
    /// whose value is not a finite number (NaN, ±Inf) map to `None`: the
    /// view shows "no data" rather than garbage. When a name has several
    /// series (labels), the smallest value wins: the rules here are
    /// aggregated, and the smallest runway is the one to show.
    pub async fn instant_by_name(&self, expr: &str) -> Result<BTreeMap<String, Option<f64>>, SourceError> {
        let data = self.get("/api/v1/query", &[("query", expr)]).await?;
        let mut values: BTreeMap<String, Option<f64>> = BTreeMap::new();
        for sample in result_array(&data, self.base)? {
            let name = metric_name(sample);
            let value = sample["value"].get(1).and_then(parse_value);
            let slot = values.entry(name).or_insert(value);
            if let (Some(old), Some(new)) = (*slot, value) {
                *slot = Some(old.min(new));
            }
        }
        Ok(values)
    }

    /// The points of every series `expr` selects over the last `range`, by
    /// metric name. Non-finite points are left out.
    pub async fn range_by_name(
        &self,
        expr: &str,
        end: f64,
        range: Duration,
        step: Duration,
    ) -> Result<BTreeMap<String, Vec<Point>>, SourceError> {
        let start = (end - range.as_secs_f64()).to_string();
        let end = end.to_string();
        let step = step.as_secs_f64().to_string();
        let data = self
            .get(
                "/api/v1/query_range",
                &[("query", expr), ("start", &start), ("end", &end), ("step", &step)],
            )
            .await?;
        let mut series = BTreeMap::new();
        for matrix in result_array(&data, self.base)? {
            let points: Vec<Point> = matrix["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|point| Some((point.get(0)?.as_f64()?, parse_value(point.get(1)?)?)))
                .collect();
            series.insert(metric_name(matrix), points);
        }
        Ok(series)
    }

    /// Counts the rules Prometheus has loaded.
    pub async fn rules(&self) -> Result<RuleCounts, SourceError> {
        let data = self.get("/api/v1/rules", &[]).await?;
        let mut counts = RuleCounts {
            recording: 0,
            alerting: 0,
            failing: 0,
        };
        let groups = data["groups"]
            .as_array()
            .ok_or_else(|| SourceError::bad_answer(self.base, "rules answer without `groups`"))?;
        for rule in groups
            .iter()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        {
            match rule["type"].as_str() {
                Some("recording") => counts.recording += 1,
                Some("alerting") => counts.alerting += 1,
                _ => {}
            }
            if rule["health"] == "err" {
                counts.failing += 1;
            }
        }
        Ok(counts)
    }

    async fn get(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, SourceError> {
        let query = serde_urlencoded::to_string(params).unwrap_or_default();
        let response = self
            .client
            .get(format!("{}{path}?{query}", self.base))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| SourceError::unreachable(self.base, e))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| SourceError::unreachable(self.base, e))?;
        // Prometheus answers errors (a bad query: 400/422) with the same
        // envelope, so read it before judging the status.
        match serde_json::from_str::<Envelope>(&text) {
            Ok(envelope) if envelope.status == "success" => Ok(envelope.data),
            Ok(envelope) => Err(SourceError::Refused {
                url: self.base.to_owned(),
                status: status.as_u16(),
                message: envelope.error.unwrap_or(envelope.status),
            }),
            Err(_) => Err(SourceError::Refused {
                url: self.base.to_owned(),
                status: status.as_u16(),
                message: format!("not a Prometheus API answer: {}", snippet(&text)),
            }),
        }
    }
}

fn result_array<'v>(data: &'v Value, base: &str) -> Result<&'v Vec<Value>, SourceError> {
    data["result"]
        .as_array()
        .ok_or_else(|| SourceError::bad_answer(base, "query answer without `result`"))
}

fn metric_name(sample: &Value) -> String {
    sample["metric"]["__name__"].as_str().unwrap_or("").to_owned()
}

/// Prometheus sends sample values as strings: "1.5", "NaN", "+Inf".
fn parse_value(value: &Value) -> Option<f64> {
    value.as_str()?.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// The start of a body, for error messages.
pub(super) fn snippet(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(120) {
        Some((at, _)) => format!("{:?}…", &text[..at]),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_that_are_not_finite_numbers_are_no_data() {
        assert_eq!(parse_value(&json!("12.5")), Some(12.5));
        assert_eq!(parse_value(&json!("0")), Some(0.0));
        for garbage in [json!("NaN"), json!("+Inf"), json!("-Inf"), json!("x"), json!(3)] {
            assert_eq!(parse_value(&garbage), None, "{garbage}");
        }
    }

    #[test]
    fn snippets_are_short() {
        assert_eq!(snippet(" ok "), "\"ok\"");
        assert!(snippet(&"a".repeat(500)).len() < 130);
    }
}
