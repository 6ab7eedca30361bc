//! Prometheus' answers to a query (`/api/v1/query`, `/api/v1/query_range`)
//! read into the `prometheus` interface's series, bounded: at most
//! `max_series` series, and from a body cut at the manifest's `max_bytes`
//! the series that were read whole. So a query that selects a million series
//! costs the host at most `max_bytes` of reading, never the whole answer.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::prometheus::PromError;

/// One series: its labels and its (unix seconds, value) samples, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct PromSeries {
    /// Label names and values, by name.
    pub labels: Vec<(String, String)>,
    /// Samples; one for an instant query.
    pub samples: Vec<(f64, f64)>,
}

/// The series answered, and whether there were more.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PromAnswer {
    /// At most the manifest's `max_series`.
    pub series: Vec<PromSeries>,
    /// Series were left out: past `max_series`, or past `max_bytes`.
    pub truncated: bool,
}

/// The envelope's head: whether it is an error, and the result's type.
#[derive(Deserialize)]
struct Head {
    status: String,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<DataHead>,
}

#[derive(Deserialize)]
struct DataHead {
    #[serde(rename = "resultType")]
    result_type: String,
    #[serde(default)]
    result: Option<serde_json::Value>,
}

/// A vector's or a matrix's element.
#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    value: Option<(f64, String)>,
    #[serde(default)]
    values: Vec<(f64, String)>,
    // Native histograms are not answered: their series keep their labels.
    #[serde(default)]
    #[allow(dead_code)]
    histogram: Option<IgnoredAny>,
}

impl RawSeries {
    fn into_series(self) -> PromSeries {
        let samples = self
            .value
            .into_iter()
            .chain(self.values)
            .map(|(at, value)| (at, sample_value(&value)))
            .collect();
        PromSeries {
            labels: self.metric.into_iter().collect(),
            samples,
        }
    }
}

/// Prometheus writes values as text: `"1.5"`, `"NaN"`, `"+Inf"`.
fn sample_value(text: &str) -> f64 {
    text.parse().unwrap_or(f64::NAN)
}

/// Reads `body`, an answer of Prometheus' query API; `complete` is false
/// when it was cut at the manifest's `max_bytes` (what was read whole is
/// answered, `truncated`). At most `max_series` series are kept.
pub fn parse_answer(body: &[u8], complete: bool, max_series: usize) -> Result<PromAnswer, PromError> {
    if complete {
        let head: Head = serde_json::from_slice(body).map_err(|_| not_api(body))?;
        if head.status != "success" {
            let message = head.error.unwrap_or(head.status);
            // `bad_data`: the PromQL does not parse; `execution`: it cannot
            // be evaluated as written (many-to-many matching, ...). Both
            // are the query's doing; the others are Prometheus'.
            return Err(match head.error_type.as_deref() {
                Some("bad_data" | "execution") => PromError::BadQuery(message),
                Some(kind) => PromError::Failed(format!("Prometheus: {kind}: {message}")),
                None => PromError::Failed(format!("Prometheus: {message}")),
            });
        }
        let data = head.data.ok_or_else(|| not_api(body))?;
        match data.result_type.as_str() {
            "vector" | "matrix" => {}
            "scalar" => {
                let (at, value): (f64, String) = data
                    .result
                    .and_then(|r| serde_json::from_value(r).ok())
                    .ok_or_else(|| not_api(body))?;
                return Ok(PromAnswer {
                    series: vec![PromSeries {
                        labels: Vec::new(),
                        samples: vec![(at, sample_value(&value))],
                    }],
                    truncated: false,
                });
            }
            other => {
                return Err(PromError::BadQuery(format!(
                    "the query's result is a {other}; a query must give a vector, a matrix or a scalar"
                )));
            }
        }
    } else if !starts_with_success(body) {
        return Err(PromError::Failed(format!(
            "Prometheus' answer is longer than the manifest's max_bytes ({} bytes) and not a result",
            body.len()
        )));
    }
    let (series, more) = scan_series(body, max_series)?;
    Ok(PromAnswer {
        series,
        truncated: more || !complete,
    })
}

/// Whether a cut answer began as a successful one.
fn starts_with_success(body: &[u8]) -> bool {
    let start: Vec<u8> = body
        .iter()
        .take(64)
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    start.starts_with(br#"{"status":"success""#)
}

/// The elements of `data.result`, one at a time, up to `max` (and whether
/// there were more), from a body that may end anywhere: an element cut by
/// the end of the body is left out.
fn scan_series(body: &[u8], max: usize) -> Result<(Vec<PromSeries>, bool), PromError> {
    const KEY: &[u8] = br#""result""#;
    let Some(at) = body.windows(KEY.len()).position(|w| w == KEY) else {
        // Cut before the result began: nothing read whole.
        return Ok((Vec::new(), true));
    };
    let mut pos = skip(body, at + KEY.len(), b" \t\r\n:");
    if body.get(pos) != Some(&b'[') {
        return Ok((Vec::new(), true));
    }
    pos += 1;
    let mut series = Vec::new();
    loop {
        pos = skip(body, pos, b" \t\r\n,");
        match body.get(pos) {
            None => return Ok((series, true)),
            Some(b']') => return Ok((series, false)),
            Some(_) => {}
        }
        if series.len() == max {
            return Ok((series, true));
        }
        let mut stream = serde_json::Deserializer::from_slice(&body[pos..]).into_iter::<RawSeries>();
        match stream.next() {
            Some(Ok(raw)) => {
                series.push(raw.into_series());
                pos += stream.byte_offset();
            }
            Some(Err(e)) if e.is_eof() => return Ok((series, true)),
            None => return Ok((series, true)),
            Some(Err(e)) => {
                return Err(PromError::Failed(format!(
                    "Prometheus' answer has a series that is not one: {e}"
                )));
            }
        }
    }
}

fn skip(body: &[u8], mut pos: usize, what: &[u8]) -> usize {
    while body.get(pos).is_some_and(|b| what.contains(b)) {
        pos += 1;
    }
    pos
}

fn not_api(body: &[u8]) -> PromError {
    let start = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
    PromError::Failed(format!("not a Prometheus API answer: {start:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1700000000.5,"1"]},{"metric":{"__name__":"up","job":"b"},"value":[1700000000.5,"0"]},{"metric":{"job":"c"},"value":[1700000000.5,"NaN"]}]}}"#;

    #[test]
    fn a_vector_reads_into_series() {
        let answer = parse_answer(VECTOR.as_bytes(), true, 10).unwrap();
        assert!(!answer.truncated);
        assert_eq!(answer.series.len(), 3);
        assert_eq!(
            answer.series[0].labels,
            vec![("__name__".into(), "up".into()), ("job".into(), "a".into())]
        );
        assert_eq!(answer.series[1].samples, vec![(1700000000.5, 0.0)]);
        assert!(answer.series[2].samples[0].1.is_nan());
    }

    #[test]
    fn a_matrix_and_a_scalar_read_into_series() {
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"a"},"values":[[1,"1"],[2,"+Inf"],[3,"2.5"]]}]}}"#;
        let answer = parse_answer(matrix.as_bytes(), true, 10).unwrap();
        assert_eq!(answer.series[0].samples.len(), 3);
        assert_eq!(answer.series[0].samples[1].1, f64::INFINITY);
        assert_eq!(answer.series[0].samples[2], (3.0, 2.5));
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[5,"42"]}}"#;
        let answer = parse_answer(scalar.as_bytes(), true, 10).unwrap();
        assert_eq!(answer.series[0].samples, vec![(5.0, 42.0)]);
        assert!(answer.series[0].labels.is_empty());
    }

    #[test]
    fn more_series_than_allowed_are_cut_and_said() {
        let answer = parse_answer(VECTOR.as_bytes(), true, 2).unwrap();
        assert_eq!(answer.series.len(), 2);
        assert!(answer.truncated);
        let exactly = parse_answer(VECTOR.as_bytes(), true, 3).unwrap();
        assert!(!exactly.truncated);
    }

    #[test]
    fn a_body_cut_anywhere_answers_the_series_read_whole() {
        for cut in 20..VECTOR.len() - 3 {
            let answer = parse_answer(&VECTOR.as_bytes()[..cut], false, 10)
                .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            assert!(answer.truncated, "cut at {cut}");
            let whole = parse_answer(VECTOR.as_bytes(), true, 10).unwrap();
            assert_eq!(
                answer.series[..],
                whole.series[..answer.series.len()],
                "cut at {cut}"
            );
        }
        // Cut right after the second series: both are there.
        let second_end = VECTOR.find(r#""0"]}"#).unwrap() + 5;
        let answer = parse_answer(&VECTOR.as_bytes()[..second_end], false, 10).unwrap();
        assert_eq!(answer.series.len(), 2);
    }

    #[test]
    fn errors_are_told_apart() {
        let bad = r#"{"status":"error","errorType":"bad_data","error":"1:3: parse error: unexpected end of input"}"#;
        assert_eq!(
            parse_answer(bad.as_bytes(), true, 10),
            Err(PromError::BadQuery(
                "1:3: parse error: unexpected end of input".into()
            ))
        );
        let timeout = r#"{"status":"error","errorType":"timeout","error":"query timed out"}"#;
        assert!(
            matches!(parse_answer(timeout.as_bytes(), true, 10), Err(PromError::Failed(m)) if m.contains("timed out"))
        );
        assert!(
            matches!(parse_answer(b"<html>502</html>", true, 10), Err(PromError::Failed(m)) if m.contains("not a Prometheus"))
        );
        assert!(matches!(
            parse_answer(b"<html>502", false, 10),
            Err(PromError::Failed(_))
        ));
        let string = r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#;
        assert!(matches!(
            parse_answer(string.as_bytes(), true, 10),
            Err(PromError::BadQuery(_))
        ));
    }
}
