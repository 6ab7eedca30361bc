//! Recorded answers for `autoheal plugin test --answers FILE`: a scenario
//! file of HTTP answers (by method and URL, exact or a prefix), PromQL
//! answers (by query, in the Prometheus API's own `data` shape, or an
//! error) and container states, so that a plugin that checks before it acts
//! can be tried without the services it reads.
//!
//! The answers stand in for the network and for Prometheus *under* the
//! gate: [`RecordedHttp`] is an `HttpTransport` and [`RecordedPrometheus`] a
//! `PrometheusSource`, so the allow-list, the secrets (put in, scrubbed out),
//! the address check and every bound apply to a recorded answer exactly as
//! to a real one. A read with no answer fails, saying which read and where
//! to add it, and is listed in the report; with `--live-reads` it goes to
//! the real service instead (a recorded answer still wins for what it
//! covers). Effects never reach either: `plugin test` runs in dry-run,
//! where the gate records them without calling the transport.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use serde::Deserialize;

use autoheal_sandbox::capability::{
    HttpTransport, Inbound, NetError, Outbound, PromAnswer, PromError, PromQuery, PrometheusSource,
    parse_answer,
};
use autoheal_sandbox::manifest::{HttpRule, HttpUrl, PrometheusGrant, UrlHost};

use crate::plugin_trial::{ContainerSeed, TrialReads, Unanswered};

/// Where a name of a recorded answer "resolves": a public address, so that
/// the gate's address check passes as it would for a public service.
/// Nothing ever connects to it: a request resolved here is answered from
/// the file or refused.
pub const RECORDED_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34));

/// Largest answers file read (it is a test fixture, not a data set).
pub const MAX_ANSWERS_BYTES: u64 = 16 * 1024 * 1024;

/// An answers file that cannot be used, naming the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum AnswersError {
    /// The file cannot be read.
    #[error("{file}: cannot read it: {source}")]
    Read {
        /// The file.
        file: String,
        /// What the filesystem said.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_ANSWERS_BYTES`].
    #[error("{file}: {bytes} bytes, more than the {MAX_ANSWERS_BYTES} an answers file may have")]
    TooLarge {
        /// The file.
        file: String,
        /// Its size.
        bytes: u64,
    },
    /// It is not JSON of the answers file's shape.
    #[error("{file}: not an answers file: {source}")]
    Shape {
        /// The file.
        file: String,
        /// Where and why serde stopped.
        source: serde_json::Error,
    },
    /// One entry is wrong.
    #[error("{file}: {entry}: {problem}")]
    Entry {
        /// The file.
        file: String,
        /// Which entry (`http[2]`, `prometheus[0]`).
        entry: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnswers {
    #[serde(default)]
    http: Vec<RawHttp>,
    #[serde(default)]
    prometheus: Vec<RawProm>,
    #[serde(default)]
    containers: Option<Vec<ContainerSeed>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default = "get")]
    method: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    url_prefix: Option<String>,
    #[serde(default = "ok")]
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_base64: Option<String>,
}

fn get() -> String {
    "GET".into()
}

fn ok() -> u16 {
    200
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProm {
    query: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default = "bad_data")]
    error_type: String,
}

fn bad_data() -> String {
    "bad_data".into()
}

/// What an HTTP answer covers: one URL, or every URL under a prefix.
#[derive(Debug)]
enum Covers {
    Exact(HttpUrl),
    Prefix(HttpRule),
}

#[derive(Debug)]
struct HttpEntry {
    method: String,
    covers: Covers,
    answer: Inbound,
}

impl HttpEntry {
    fn host(&self) -> &UrlHost {
        match &self.covers {
            Covers::Exact(url) => &url.host,
            Covers::Prefix(rule) => &rule.prefix.host,
        }
    }
}

/// Recorded answers, checked: every URL parsed as the gate parses it, every
/// PromQL answer parsed as Prometheus' would be.
#[derive(Debug, Default)]
pub struct Answers {
    /// The file, as named in messages; `None`: no `--answers` was given.
    source: Option<String>,
    http: Vec<HttpEntry>,
    /// The body of the API answer of each query, by its PromQL (trimmed).
    prometheus: BTreeMap<String, Vec<u8>>,
    /// Container states, as `--containers` gives them.
    pub containers: Option<Vec<ContainerSeed>>,
}

impl Answers {
    /// No answers file: every read is unanswered.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads and checks the answers file at `path`.
    pub fn read(path: &Path) -> Result<Self, AnswersError> {
        let file = path.display().to_string();
        let read = |source| AnswersError::Read {
            file: file.clone(),
            source,
        };
        let bytes = std::fs::metadata(path).map_err(read)?.len();
        if bytes > MAX_ANSWERS_BYTES {
            return Err(AnswersError::TooLarge { file, bytes });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Self::parse(&text, &file)
    }

    /// Checks the answers in `text`, named `file` in messages.
    pub fn parse(text: &str, file: &str) -> Result<Self, AnswersError> {
        // serde reads a list as a struct's fields in order: only an object is one.
        if !text.trim_start().starts_with('{') {
            return Err(AnswersError::Entry {
                file: file.to_owned(),
                entry: "the file".into(),
                problem: "not a JSON object with `http`, `prometheus` and `containers`".into(),
            });
        }
        let raw: RawAnswers = serde_json::from_str(text).map_err(|source| AnswersError::Shape {
            file: file.to_owned(),
            source,
        })?;
        let entry_error = |entry: String, problem: String| AnswersError::Entry {
            file: file.to_owned(),
            entry,
            problem,
        };
        let mut http = Vec::new();
        for (i, entry) in raw.http.into_iter().enumerate() {
            http.push(http_entry(entry).map_err(|problem| entry_error(format!("http[{i}]"), problem))?);
        }
        let mut prometheus = BTreeMap::new();
        for (i, entry) in raw.prometheus.into_iter().enumerate() {
            let at = format!("prometheus[{i}]");
            let query = entry.query.trim().to_owned();
            let body = prom_body(entry).map_err(|problem| entry_error(at.clone(), problem))?;
            if prometheus.insert(query.clone(), body).is_some() {
                return Err(entry_error(at, format!("a second answer for {query:?}")));
            }
        }
        Ok(Self {
            source: Some(file.to_owned()),
            http,
            prometheus,
            containers: raw.containers,
        })
    }

    /// The answer for `method` and `url`: an exact one, else the one with
    /// the longest prefix that covers it.
    fn http_answer(&self, method: &str, url: &HttpUrl) -> Option<&Inbound> {
        let same_method = self.http.iter().filter(|e| e.method == method);
        let exact = same_method
            .clone()
            .find(|e| matches!(&e.covers, Covers::Exact(u) if u == url));
        exact
            .or_else(|| {
                same_method
                    .filter_map(|e| match &e.covers {
                        Covers::Prefix(rule) if rule.allows(method, url) => Some((rule.prefix.path.len(), e)),
                        _ => None,
                    })
                    .max_by_key(|(len, _)| *len)
                    .map(|(_, e)| e)
            })
            .map(|e| &e.answer)
    }

    /// Whether some HTTP answer is for a URL on the host `name`.
    fn names(&self, name: &str) -> bool {
        self.http
            .iter()
            .any(|e| matches!(e.host(), UrlHost::Name(n) if n == name))
    }

    /// What to tell an author whose read `what` had no answer.
    fn missing(&self, what: &str) -> String {
        match &self.source {
            Some(file) => format!("no recorded answer for {what}; add one to {file} or pass --live-reads"),
            None => format!(
                "no recorded answer for {what} (no --answers file); pass --answers FILE or --live-reads"
            ),
        }
    }
}

fn http_entry(raw: RawHttp) -> Result<HttpEntry, String> {
    let method = raw.method.to_ascii_uppercase();
    if method != "GET" && method != "HEAD" {
        return Err(format!(
            "method {method}: only reads (GET, HEAD) are answered; effects are recorded, never sent, by plugin test"
        ));
    }
    let covers = match (raw.url, raw.url_prefix) {
        (Some(url), None) => Covers::Exact(HttpUrl::parse(&url).map_err(|e| format!("url: {e}"))?),
        (None, Some(prefix)) => {
            let prefix = HttpUrl::parse(&prefix).map_err(|e| format!("url_prefix: {e}"))?;
            if prefix.query.is_some() {
                return Err(
                    "url_prefix: a prefix has no query (give `url` for one URL with its query)".into(),
                );
            }
            Covers::Prefix(HttpRule {
                method: method.clone(),
                prefix,
            })
        }
        _ => return Err("give exactly one of `url` (that URL) and `url_prefix` (every URL under it)".into()),
    };
    if !(100..=599).contains(&raw.status) {
        return Err(format!("status {}: not an HTTP status (100-599)", raw.status));
    }
    let body = match (raw.body, raw.body_base64) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
            .decode(encoded.as_bytes())
            .map_err(|e| format!("body_base64 is not base64: {e}"))?,
        (None, None) => Vec::new(),
        (Some(_), Some(_)) => return Err("give `body` or `body_base64`, not both".into()),
    };
    Ok(HttpEntry {
        method,
        covers,
        answer: Inbound {
            status: raw.status,
            headers: raw.headers.into_iter().collect(),
            body,
            truncated: false,
        },
    })
}

/// The API answer `{"status": ..., "data"|"error": ...}` for an entry,
/// checked by the parser the gate uses on Prometheus' own answers. Written
/// with `status` first, as Prometheus writes it: a body cut at `max_bytes`
/// is read only if it starts so.
fn prom_body(raw: RawProm) -> Result<Vec<u8>, String> {
    let text = |value: &serde_json::Value| serde_json::to_string(value).unwrap_or_default();
    match (raw.data, raw.error) {
        (Some(data), None) => {
            let body = format!(r#"{{"status":"success","data":{}}}"#, text(&data)).into_bytes();
            match parse_answer(&body, true, usize::MAX) {
                Ok(_) => Ok(body),
                Err(e) => Err(format!(
                    "data is not the Prometheus API's vector, matrix or scalar: {e}"
                )),
            }
        }
        (None, Some(error)) => Ok(format!(
            r#"{{"status":"error","errorType":{},"error":{}}}"#,
            text(&raw.error_type.into()),
            text(&error.into())
        )
        .into_bytes()),
        _ => Err("give exactly one of `data` (the API's data: resultType and result) and `error`".into()),
    }
}

/// A trial's reads answered from `answers`; what they do not cover goes to
/// `live`'s services if given, else fails and is listed. Make one per run:
/// its list of unanswered reads is that run's.
pub fn trial_reads(answers: Arc<Answers>, live: Option<&TrialReads>) -> TrialReads {
    let unanswered = Arc::new(Unanswered::default());
    TrialReads {
        http: Arc::new(RecordedHttp::new(
            answers.clone(),
            live.map(|l| l.http.clone()),
            unanswered.clone(),
        )),
        prometheus: Arc::new(RecordedPrometheus::new(
            answers,
            live.map(|l| l.prometheus.clone()),
            unanswered.clone(),
        )),
        unanswered: Some(unanswered),
    }
}

/// `http.request`'s transport in a trial: recorded answers, then (with
/// `--live-reads`) the network.
pub struct RecordedHttp {
    answers: Arc<Answers>,
    live: Option<Arc<dyn HttpTransport>>,
    unanswered: Arc<Unanswered>,
}

impl RecordedHttp {
    /// Answers from `answers`; what they do not cover goes to `live`, if
    /// given, else fails and is listed in `unanswered`.
    pub fn new(
        answers: Arc<Answers>,
        live: Option<Arc<dyn HttpTransport>>,
        unanswered: Arc<Unanswered>,
    ) -> Self {
        Self {
            answers,
            live,
            unanswered,
        }
    }
}

#[async_trait::async_trait]
impl HttpTransport for RecordedHttp {
    async fn resolve(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, NetError> {
        let recorded = vec![SocketAddr::new(RECORDED_ADDRESS, port)];
        match &self.live {
            // Live: the name's real addresses, which the gate checks as the
            // server would; a name that does not resolve (a service of the
            // production network) is still answered from the file.
            Some(live) => match live.resolve(name, port).await {
                Ok(found) => Ok(found),
                Err(_) if self.answers.names(name) => Ok(recorded),
                Err(e) => Err(e),
            },
            None => Ok(recorded),
        }
    }

    async fn send(&self, to: SocketAddr, request: Outbound, max: usize) -> Result<Inbound, NetError> {
        // Defence in depth: the gate never hands an effect to the transport
        // in dry-run, and a trial never leaves dry-run.
        if request.method != "GET" && request.method != "HEAD" {
            return Err(NetError::Failed(format!(
                "{} is an effect: plugin test never sends one",
                request.method
            )));
        }
        if let Some(answer) = self.answers.http_answer(&request.method, &request.url) {
            let mut answer = answer.clone();
            if answer.body.len() > max {
                answer.body.truncate(max);
                answer.truncated = true;
            }
            if request.method == "HEAD" {
                answer.body.clear();
            }
            return Ok(answer);
        }
        let what = format!("{} {}", request.method, request.url.redacted());
        let resolved_here = to.ip() == RECORDED_ADDRESS && matches!(request.url.host, UrlHost::Name(_));
        match &self.live {
            Some(live) if !resolved_here => live.send(to, request, max).await,
            _ => {
                let message = self.answers.missing(&what);
                self.unanswered.add(what);
                Err(NetError::Failed(message))
            }
        }
    }
}

/// The trial's Prometheus: recorded answers, then (with `--live-reads`) the
/// host's `prometheus_url`.
pub struct RecordedPrometheus {
    answers: Arc<Answers>,
    live: Option<Arc<dyn PrometheusSource>>,
    unanswered: Arc<Unanswered>,
}

impl RecordedPrometheus {
    /// Answers from `answers`; what they do not cover goes to `live`, if
    /// given, else fails and is listed in `unanswered`.
    pub fn new(
        answers: Arc<Answers>,
        live: Option<Arc<dyn PrometheusSource>>,
        unanswered: Arc<Unanswered>,
    ) -> Self {
        Self {
            answers,
            live,
            unanswered,
        }
    }
}

#[async_trait::async_trait]
impl PrometheusSource for RecordedPrometheus {
    async fn query(&self, query: &PromQuery, bounds: &PrometheusGrant) -> Result<PromAnswer, PromError> {
        let promql = query.promql().trim();
        if let Some(body) = self.answers.prometheus.get(promql) {
            // Bounded as a real answer is: read up to max_bytes, then at
            // most max_series whole series.
            let complete = body.len() <= bounds.max_bytes;
            let read = &body[..body.len().min(bounds.max_bytes)];
            return parse_answer(read, complete, bounds.max_series);
        }
        match &self.live {
            Some(live) => live.query(query, bounds).await,
            None => {
                let what = format!("PromQL {promql}");
                let message = self.answers.missing(&what);
                self.unanswered.add(what);
                Err(PromError::Failed(message))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{
      "http": [
        {"url": "https://runbooks.example/api/status", "body": "{\"healthy\": false}",
         "headers": {"content-type": "application/json"}},
        {"url_prefix": "https://runbooks.example/api/", "status": 404, "body": "not here"},
        {"method": "HEAD", "url_prefix": "https://runbooks.example/", "body_base64": "aGVsbG8="}
      ],
      "prometheus": [
        {"query": "up{job=\"crm\"}", "data": {"resultType": "vector", "result": [
          {"metric": {"job": "crm", "instance": "a"}, "value": [1700000000, "0"]},
          {"metric": {"job": "crm", "instance": "b"}, "value": [1700000000, "1"]}]}},
        {"query": "scalar(1)", "data": {"resultType": "scalar", "result": [1700000000, "1"]}},
        {"query": "rate(", "error": "parse error: unexpected end of input"}
      ]
    }"#;

    fn answers() -> Arc<Answers> {
        Arc::new(Answers::parse(FILE, "answers.json").unwrap())
    }

    fn outbound(method: &str, url: &str) -> Outbound {
        Outbound {
            method: method.into(),
            url: HttpUrl::parse(url).unwrap(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn grant(max_series: usize, max_bytes: usize) -> PrometheusGrant {
        PrometheusGrant {
            max_series,
            max_bytes,
            ..PrometheusGrant::default()
        }
    }

    #[tokio::test]
    async fn exact_answers_win_over_the_longest_prefix_and_bodies_are_bounded() {
        let unanswered = Arc::new(Unanswered::default());
        let http = RecordedHttp::new(answers(), None, unanswered.clone());
        let to = http.resolve("runbooks.example", 443).await.unwrap()[0];
        assert_eq!(to.ip(), RECORDED_ADDRESS);

        let exact = http
            .send(to, outbound("GET", "https://runbooks.example/api/status"), 1000)
            .await
            .unwrap();
        assert_eq!(
            (exact.status, exact.body.as_slice()),
            (200, &b"{\"healthy\": false}"[..])
        );
        assert_eq!(
            exact.headers,
            [("content-type".to_owned(), "application/json".to_owned())]
        );
        let under = http
            .send(to, outbound("GET", "https://runbooks.example/api/other"), 1000)
            .await
            .unwrap();
        assert_eq!(under.status, 404);
        let cut = http
            .send(to, outbound("GET", "https://runbooks.example/api/status"), 4)
            .await
            .unwrap();
        assert_eq!((cut.body.as_slice(), cut.truncated), (&b"{\"he"[..], true));
        let head = http
            .send(to, outbound("HEAD", "https://runbooks.example/x"), 1000)
            .await
            .unwrap();
        assert!(head.body.is_empty() && head.status == 200);

        let err = http
            .send(
                to,
                outbound("GET", "https://runbooks.example/other?token=abc"),
                1000,
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no recorded answer for GET https://runbooks.example:443/other?token=[…]; \
             add one to answers.json or pass --live-reads"
        );
        let effect = http
            .send(to, outbound("POST", "https://runbooks.example/api/status"), 1000)
            .await
            .unwrap_err();
        assert!(effect.to_string().contains("never sends"), "{effect}");
        assert_eq!(
            unanswered.list(),
            ["GET https://runbooks.example:443/other?token=[…]"]
        );
    }

    #[tokio::test]
    async fn promql_answers_keep_the_api_shape_and_the_bounds() {
        let unanswered = Arc::new(Unanswered::default());
        let prom = RecordedPrometheus::new(answers(), None, unanswered.clone());
        let ask = |promql: &str| PromQuery::Instant {
            promql: promql.into(),
            time: None,
        };
        let both = prom
            .query(&ask(" up{job=\"crm\"} "), &grant(10, 1 << 20))
            .await
            .unwrap();
        assert_eq!(both.series.len(), 2);
        assert_eq!(both.series[0].samples, [(1_700_000_000.0, 0.0)]);
        let one = prom
            .query(&ask("up{job=\"crm\"}"), &grant(1, 1 << 20))
            .await
            .unwrap();
        assert!(one.truncated && one.series.len() == 1);
        let scalar = prom.query(&ask("scalar(1)"), &grant(10, 1 << 20)).await.unwrap();
        assert_eq!(scalar.series[0].samples, [(1_700_000_000.0, 1.0)]);
        let bad = prom.query(&ask("rate("), &grant(10, 1 << 20)).await.unwrap_err();
        assert!(
            matches!(bad, PromError::BadQuery(ref m) if m.contains("parse error")),
            "{bad:?}"
        );
        let missing = prom.query(&ask("up"), &grant(10, 1 << 20)).await.unwrap_err();
        assert_eq!(
            missing.to_string(),
            "no recorded answer for PromQL up; add one to answers.json or pass --live-reads"
        );
        assert_eq!(unanswered.list(), ["PromQL up"]);

        let none = RecordedPrometheus::new(Arc::new(Answers::none()), None, unanswered);
        let err = none.query(&ask("up"), &grant(10, 100)).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("(no --answers file); pass --answers FILE"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_entry_is_named_with_its_file_and_problem() {
        for (text, expected) in [
            ("[]", "answers.json: the file: not a JSON object"),
            ("{\"http\": [", "answers.json: not an answers file: EOF"),
            (r#"{"htp": []}"#, "unknown field `htp`"),
            (
                r#"{"http": [{"url": "ftp://x/"}]}"#,
                "answers.json: http[0]: url:",
            ),
            (
                r#"{"http": [{"url": "https://a.example/", "url_prefix": "https://a.example/"}]}"#,
                "http[0]: give exactly one of `url`",
            ),
            (
                r#"{"http": [{"method": "POST", "url": "https://a.example/"}]}"#,
                "http[0]: method POST: only reads",
            ),
            (
                r#"{"http": [{"url": "https://a.example/", "body_base64": "%%"}]}"#,
                "http[0]: body_base64 is not base64",
            ),
            (
                r#"{"prometheus": [{"query": "up", "data": {"resultType": "vector", "result": []}}, {"query": "x"}]}"#,
                "prometheus[1]: give exactly one of `data`",
            ),
            (
                r#"{"prometheus": [{"query": "up", "data": {"result": []}}]}"#,
                "prometheus[0]: data is not the Prometheus API's",
            ),
            (
                r#"{"containers": [{"name": "db", "uptime": 3}]}"#,
                "unknown field `uptime`",
            ),
        ] {
            let err = Answers::parse(text, "answers.json").unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(err.starts_with("answers.json: "), "{err}");
        }
    }

    /// The gate is above the recorded transport: the allow-list still
    /// refuses what the manifest does not name (though the file answers
    /// it), secrets go in and a recorded body that carries one comes back
    /// scrubbed, and a POST is recorded, never handed to the transport.
    #[tokio::test]
    async fn recorded_answers_go_through_the_gate() {
        use autoheal_sandbox::breaker::Joining;
        use autoheal_sandbox::capability::{
            Breakers, CallOutcome, CapabilityGate, ExecutionMode, HostServices, HttpCall, HttpServices,
            NoIntentLog, Secrets,
        };
        use autoheal_sandbox::manifest::{ContainerGrant, Manifest, ManifestBounds};

        const TOKEN: &str = "tok-recorded-5e1f7a";
        let manifest = Manifest::parse(
            "p.toml",
            r#"name = "p"
version = "1"
component = "p.wasm"
[capabilities.http]
allow = ["GET https://runbooks.example/api/", "POST https://runbooks.example/api/flush"]
secrets = { TOKEN = "header:Authorization:Bearer {}" }
max_response_bytes = 1024
"#,
            ManifestBounds { max_memory_mb: 256 },
        )
        .unwrap();
        let text = format!(
            r#"{{"http": [
              {{"url": "https://runbooks.example/api/whoami", "body": "you are {TOKEN}"}},
              {{"url_prefix": "https://elsewhere.example/", "body": "never"}}]}}"#
        );
        let answers = Arc::new(Answers::parse(&text, "answers.json").unwrap());
        let unanswered = Arc::new(Unanswered::default());
        let services = HostServices {
            http: HttpServices {
                transport: Arc::new(RecordedHttp::new(answers, None, unanswered.clone())),
                secrets: Arc::new(Secrets::new(BTreeMap::from([("TOKEN".into(), TOKEN.into())]))),
            },
            ..HostServices::offline(
                Arc::new(autoheal_containers::FakeRuntime::default()),
                Breakers::with_limit(1),
                Arc::new(NoIntentLog),
            )
        };
        let mut gate = CapabilityGate::new(
            "p".into(),
            Arc::new(ContainerGrant::default()),
            ExecutionMode::DryRun,
            services,
            std::time::Duration::ZERO,
            Joining::default(),
        )
        .with_http(manifest.http_grant);
        let call = |method: &str, url: &str| HttpCall {
            method: method.into(),
            url: url.into(),
            secrets: vec!["TOKEN".into()],
            ..HttpCall::default()
        };

        let answer = gate
            .http_request(call("GET", "https://runbooks.example/api/whoami"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(String::from_utf8(answer.body).unwrap(), "you are [secret TOKEN]");
        let denied = gate
            .http_request(call("GET", "https://elsewhere.example/x"))
            .await
            .unwrap_err();
        assert!(format!("{denied:?}").contains("not under a prefix"), "{denied:?}");
        let posted = gate
            .http_request(call("POST", "https://runbooks.example/api/flush"))
            .await
            .unwrap();
        assert!(posted.is_none(), "an effect is recorded, not answered");
        let outcomes: Vec<CallOutcome> = gate.calls().iter().map(|c| c.outcome).collect();
        assert_eq!(
            outcomes,
            [CallOutcome::Ok, CallOutcome::Denied, CallOutcome::Recorded]
        );
        assert!(unanswered.list().is_empty());
    }
}
