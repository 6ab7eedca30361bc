//! The fake host's HTTP, Prometheus and state: scripted answers, allow-lists
//! as the manifest would give them, and a record of what was asked.

use std::collections::{BTreeMap, BTreeSet};

use super::FakeHost;
use crate::http::{HttpError, Request, Response};
use crate::prometheus::{Answer, QueryError};
use crate::state::StateError;

/// What the fake knows of the three services.
#[derive(Debug, Default)]
pub(super) struct Services {
    /// `[capabilities.http] allow`: (method, URL prefix); `None`: all.
    http_allowed: Option<Vec<(String, String)>>,
    /// `[capabilities.http] secrets`: names; `None`: all.
    secrets: Option<BTreeSet<String>>,
    /// Scripted answers by (method, URL prefix), the first match wins.
    http_answers: Vec<(String, String, Result<Response, HttpError>)>,
    requests: Vec<Request>,
    queries_answered: BTreeMap<String, Result<Answer, QueryError>>,
    queries: Vec<(&'static str, String)>,
    store: BTreeMap<String, String>,
    state_writes: Vec<(String, Option<String>)>,
}

fn is_read(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

impl FakeHost {
    /// A method and URL prefix of the manifest's `[capabilities.http]
    /// allow`. Once one is allowed, any other request is `Denied`.
    pub fn allow_http(self, method: &str, url_prefix: &str) -> Self {
        self.state
            .borrow_mut()
            .services
            .http_allowed
            .get_or_insert_with(Vec::new)
            .push((method.to_ascii_uppercase(), url_prefix.to_owned()));
        self
    }

    /// The secrets the manifest names. Once given, a request naming another
    /// is `Denied`.
    pub fn allow_secrets<I: IntoIterator<Item = S>, S: Into<String>>(self, names: I) -> Self {
        self.state.borrow_mut().services.secrets = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// What a request of `method` to a URL under `url_prefix` answers. A
    /// request with no scripted answer fails (`Failed`), saying so.
    pub fn on_http(self, method: &str, url_prefix: &str, response: Response) -> Self {
        self.script_http(method, url_prefix, Ok(response))
    }

    /// A request of `method` to a URL under `url_prefix` fails with `error`.
    pub fn on_http_error(self, method: &str, url_prefix: &str, error: HttpError) -> Self {
        self.script_http(method, url_prefix, Err(error))
    }

    fn script_http(self, method: &str, prefix: &str, answer: Result<Response, HttpError>) -> Self {
        let scripted = (method.to_ascii_uppercase(), prefix.to_owned(), answer);
        self.state.borrow_mut().services.http_answers.push(scripted);
        self
    }

    /// What `promql` answers (a query or a range query). A query with no
    /// scripted answer fails (`Failed`), saying so.
    pub fn on_query(self, promql: &str, answer: Answer) -> Self {
        self.script_query(promql, Ok(answer))
    }

    /// `promql` fails with `error`.
    pub fn on_query_error(self, promql: &str, error: QueryError) -> Self {
        self.script_query(promql, Err(error))
    }

    fn script_query(self, promql: &str, answer: Result<Answer, QueryError>) -> Self {
        let scripted = (promql.to_owned(), answer);
        self.state
            .borrow_mut()
            .services
            .queries_answered
            .extend([scripted]);
        self
    }

    /// A key of the plugin's state, set before the run.
    pub fn with_state(self, key: &str, value: &str) -> Self {
        let entry = (key.to_owned(), value.to_owned());
        self.state.borrow_mut().services.store.extend([entry]);
        self
    }

    /// The requests allowed, in order (in dry-run, effects recorded too).
    pub fn requests(&self) -> Vec<Request> {
        self.state.borrow().services.requests.clone()
    }

    /// The queries asked, as `("query" | "query-range", promql)`.
    pub fn queries(&self) -> Vec<(&'static str, String)> {
        self.state.borrow().services.queries.clone()
    }

    /// The plugin's state now (in dry-run, as it was: writes are not kept).
    pub fn state(&self) -> BTreeMap<String, String> {
        self.state.borrow().services.store.clone()
    }

    /// The writes made, in order: `(key, Some(value))` for a set, `(key,
    /// None)` for a delete; in dry-run too.
    pub fn state_writes(&self) -> Vec<(String, Option<String>)> {
        self.state.borrow().services.state_writes.clone()
    }

    pub(crate) fn http_request(&self, request: Request) -> Result<Response, HttpError> {
        let mut state = self.state.borrow_mut();
        let dry_run = state.dry_run;
        let services = &mut state.services;
        let method = request.method.to_ascii_uppercase();
        if let Some(allowed) = &services.http_allowed
            && !allowed
                .iter()
                .any(|(m, p)| *m == method && request.url.starts_with(p.as_str()))
        {
            return Err(HttpError::Denied(format!(
                "{method} {} is not in the manifest's [capabilities.http] allow",
                request.url
            )));
        }
        if let Some(names) = &services.secrets
            && let Some(unknown) = request.secrets.iter().find(|s| !names.contains(*s))
        {
            return Err(HttpError::Denied(format!(
                "secret {unknown} is not in the manifest's [capabilities.http] secrets"
            )));
        }
        services.requests.push(request.clone());
        if dry_run && !is_read(&method) {
            return Ok(Response::default());
        }
        services
            .http_answers
            .iter()
            .find(|(m, p, _)| *m == method && request.url.starts_with(p.as_str()))
            .map(|(_, _, answer)| answer.clone())
            .unwrap_or_else(|| {
                Err(HttpError::Failed(format!(
                    "no answer scripted for {method} {} (FakeHost::on_http)",
                    request.url
                )))
            })
    }

    pub(crate) fn prometheus_query(&self, kind: &'static str, promql: &str) -> Result<Answer, QueryError> {
        let mut state = self.state.borrow_mut();
        let services = &mut state.services;
        services.queries.push((kind, promql.to_owned()));
        services.queries_answered.get(promql).cloned().unwrap_or_else(|| {
            Err(QueryError::Failed(format!(
                "no answer scripted for {promql} (FakeHost::on_query)"
            )))
        })
    }

    pub(crate) fn state_get(&self, key: &str) -> Result<Option<String>, StateError> {
        check_key(key)?;
        Ok(self.state.borrow().services.store.get(key).cloned())
    }

    pub(crate) fn state_set(&self, key: &str, value: &str, _ttl: Option<u64>) -> Result<(), StateError> {
        check_key(key)?;
        let mut state = self.state.borrow_mut();
        let dry_run = state.dry_run;
        let services = &mut state.services;
        services
            .state_writes
            .push((key.to_owned(), Some(value.to_owned())));
        if !dry_run {
            services.store.insert(key.to_owned(), value.to_owned());
        }
        Ok(())
    }

    pub(crate) fn state_delete(&self, key: &str) -> Result<bool, StateError> {
        check_key(key)?;
        let mut state = self.state.borrow_mut();
        let dry_run = state.dry_run;
        let services = &mut state.services;
        services.state_writes.push((key.to_owned(), None));
        Ok(if dry_run {
            services.store.contains_key(key)
        } else {
            services.store.remove(key).is_some()
        })
    }
}

/// The host's rule for keys: 1 to 128 characters of `[A-Za-z0-9_.:-]`.
fn check_key(key: &str) -> Result<(), StateError> {
    let fits = (1..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
    if fits {
        Ok(())
    } else {
        Err(StateError::Denied(format!(
            "state key {key:?} is not 1 to 128 characters of [A-Za-z0-9_.:-]"
        )))
    }
}

#[cfg(test)]
mod tests {
    use crate::http::{self, HttpError, Response};
    use crate::prometheus::{self, Answer, QueryError, Series};
    use crate::state;
    use crate::testing::FakeHost;

    #[test]
    fn http_answers_as_scripted_within_its_allow_list() {
        let host = FakeHost::new()
            .allow_http("GET", "https://runbooks.example/api/")
            .allow_http("POST", "https://runbooks.example/api/flush")
            .allow_secrets(["TOKEN"])
            .on_http("GET", "https://runbooks.example/api/", Response::new(200, "up"))
            .on_http_error(
                "POST",
                "https://runbooks.example/api/flush",
                HttpError::Timeout("5 s".into()),
            )
            .install();
        let up = http::get("https://runbooks.example/api/health").send().unwrap();
        assert_eq!((up.sent, up.status, up.text().as_str()), (true, 200, "up"));
        assert_eq!(
            http::post("https://runbooks.example/api/flush")
                .secret("TOKEN")
                .send(),
            Err(HttpError::Timeout("5 s".into()))
        );
        assert!(matches!(
            http::get("https://elsewhere.example/").send(),
            Err(HttpError::Denied(_))
        ));
        assert!(matches!(
            http::get("https://runbooks.example/api/x").secret("OTHER").send(),
            Err(HttpError::Denied(_))
        ));
        assert_eq!(host.requests().len(), 2, "denied requests are not made");
        assert_eq!(host.requests()[1].secrets, vec!["TOKEN".to_string()]);
    }

    #[test]
    fn in_dry_run_an_effect_is_recorded_not_sent_and_a_read_answers() {
        let host = FakeHost::new()
            .dry_run()
            .on_http("GET", "https://x/", Response::new(200, "ok"))
            .on_http("POST", "https://x/", Response::new(500, ""))
            .install();
        assert!(http::get("https://x/a").send().unwrap().sent);
        let post = http::post("https://x/b").send().unwrap();
        assert!(!post.sent && post.status == 0);
        assert_eq!(host.requests().len(), 2);
        let unscripted = http::get("https://y/").send().unwrap_err();
        assert!(
            unscripted.to_string().contains("no answer scripted"),
            "{unscripted}"
        );
    }

    #[test]
    fn queries_answer_as_scripted_with_their_helpers() {
        let host = FakeHost::new()
            .on_query(
                "probe_success",
                Answer {
                    series: vec![
                        Series::sample(&[("job", "a")], 0.0),
                        Series::sample(&[("job", "b")], 1.0),
                    ],
                    truncated: false,
                },
            )
            .on_query(
                r#"ALERTS{alertname="Down",alertstate="firing",job="a"}"#,
                Answer {
                    series: vec![Series::sample(&[], 1.0)],
                    truncated: false,
                },
            )
            .on_query_error("bad(", QueryError::BadQuery("parse error".into()))
            .install();
        assert!(prometheus::any_below("probe_success", 1.0).unwrap());
        assert!(!prometheus::any_above("probe_success", 1.0).unwrap());
        assert!(
            matches!(prometheus::value("probe_success"), Err(QueryError::BadQuery(m)) if m.contains("2 series")),
            "two series are not one value"
        );
        assert!(prometheus::still_failing("probe_success").unwrap());
        assert!(prometheus::is_firing("Down", &[("job", "a")]).unwrap());
        assert!(
            prometheus::is_firing("Down", &[("job", "b")]).is_err(),
            "not scripted"
        );
        assert_eq!(
            prometheus::query_range("bad(", 0.0, 60.0, 15.0),
            Err(QueryError::BadQuery("parse error".into()))
        );
        assert_eq!(host.queries().last().unwrap().0, "query-range");
        assert_eq!(host.queries().len(), 7);
    }

    #[test]
    fn state_is_kept_and_dry_run_writes_are_not() {
        let host = FakeHost::new().with_state("tries", "1").install();
        assert_eq!(state::get("tries").unwrap().as_deref(), Some("1"));
        state::set("tries", "2", None).unwrap();
        assert!(state::delete("gone").is_ok_and(|was| !was));
        assert!(matches!(
            state::get("no spaces"),
            Err(state::StateError::Denied(_))
        ));
        assert_eq!(host.state().get("tries").map(String::as_str), Some("2"));
        drop(host);

        let host = FakeHost::new().dry_run().with_state("tries", "1").install();
        state::set("tries", "2", None).unwrap();
        assert!(state::delete("tries").unwrap(), "it was set");
        assert_eq!(host.state().get("tries").map(String::as_str), Some("1"));
        assert_eq!(host.state_writes().len(), 2);
    }
}
