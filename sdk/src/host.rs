//! Where the SDK's host calls go: inside a component, the host's imports;
//! natively (a plugin's unit tests), the fake host a test installed with
//! [`testing::FakeHost`](crate::testing::FakeHost). The wrappers in
//! [`containers`](crate::containers), [`http`](crate::http),
//! [`prometheus`](crate::prometheus), [`state`](crate::state) and
//! [`log`](crate::log) call only these,
//! so a plugin's `handle` runs whole under `cargo test`.

pub(crate) use imp::*;

#[cfg(target_arch = "wasm32")]
mod imp {
    use crate::bindings;
    use crate::bindings::autoheal::plugin::containers as wit;
    use crate::containers::{ContainerError, ContainerInfo, ExecOutput, LogTail};
    use crate::http::{HttpError, Request, Response};
    use crate::prometheus::{Answer, QueryError};
    use crate::state::StateError;

    pub(crate) fn inspect(name: &str) -> Result<ContainerInfo, ContainerError> {
        Ok(wit::inspect(name)?.into())
    }

    pub(crate) fn restart(name: &str) -> Result<(), ContainerError> {
        Ok(wit::restart(name)?)
    }

    pub(crate) fn signal(name: &str, signal: &str) -> Result<(), ContainerError> {
        Ok(wit::signal(name, signal)?)
    }

    pub(crate) fn exec(name: &str, argv: &[String]) -> Result<ExecOutput, ContainerError> {
        Ok(wit::exec(name, argv)?.into())
    }

    pub(crate) fn logs(name: &str, tail: u32) -> Result<LogTail, ContainerError> {
        Ok(wit::logs(name, tail)?.into())
    }

    pub(crate) fn list_by_label(selector: &str) -> Result<Vec<String>, ContainerError> {
        Ok(wit::list_by_label(selector)?)
    }

    pub(crate) fn log(level: &str, message: &str) {
        bindings::log(level, message);
    }

    pub(crate) fn http_request(request: Request) -> Result<Response, HttpError> {
        Ok(bindings::autoheal::plugin::http::request(&request.into())?.into())
    }

    pub(crate) fn prometheus_query(promql: &str, time: Option<f64>) -> Result<Answer, QueryError> {
        Ok(bindings::autoheal::plugin::prometheus::query(promql, time)?.into())
    }

    pub(crate) fn prometheus_query_range(
        promql: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<Answer, QueryError> {
        Ok(bindings::autoheal::plugin::prometheus::query_range(promql, start, end, step)?.into())
    }

    pub(crate) fn state_get(key: &str) -> Result<Option<String>, StateError> {
        Ok(bindings::autoheal::plugin::state::get(key)?)
    }

    pub(crate) fn state_set(key: &str, value: &str, ttl: Option<u64>) -> Result<(), StateError> {
        Ok(bindings::autoheal::plugin::state::set(key, value, ttl)?)
    }

    pub(crate) fn state_delete(key: &str) -> Result<bool, StateError> {
        Ok(bindings::autoheal::plugin::state::delete(key)?)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use crate::containers::{ContainerError, ContainerInfo, ExecOutput, LogTail};
    use crate::http::{HttpError, Request, Response};
    use crate::prometheus::{Answer, QueryError};
    use crate::state::StateError;
    use crate::testing::fake::with_installed;

    pub(crate) fn inspect(name: &str) -> Result<ContainerInfo, ContainerError> {
        with_installed("inspect", |host| host.inspect(name))
    }

    pub(crate) fn restart(name: &str) -> Result<(), ContainerError> {
        with_installed("restart", |host| host.restart(name))
    }

    pub(crate) fn signal(name: &str, signal: &str) -> Result<(), ContainerError> {
        with_installed("signal", |host| host.signal(name, signal))
    }

    pub(crate) fn exec(name: &str, argv: &[String]) -> Result<ExecOutput, ContainerError> {
        with_installed("exec", |host| host.exec(name, argv))
    }

    pub(crate) fn logs(name: &str, tail: u32) -> Result<LogTail, ContainerError> {
        with_installed("logs", |host| host.logs(name, tail))
    }

    pub(crate) fn list_by_label(selector: &str) -> Result<Vec<String>, ContainerError> {
        with_installed("list_by_label", |host| host.list_by_label(selector))
    }

    pub(crate) fn log(level: &str, message: &str) {
        with_installed(level, |host| host.log(level, message));
    }

    pub(crate) fn http_request(request: Request) -> Result<Response, HttpError> {
        with_installed("http::request", |host| host.http_request(request))
    }

    // The fake answers a query as scripted, whatever its time or range.
    pub(crate) fn prometheus_query(promql: &str, _time: Option<f64>) -> Result<Answer, QueryError> {
        with_installed("prometheus::query", |host| host.prometheus_query("query", promql))
    }

    pub(crate) fn prometheus_query_range(
        promql: &str,
        _start: f64,
        _end: f64,
        _step: f64,
    ) -> Result<Answer, QueryError> {
        with_installed("prometheus::query_range", |host| {
            host.prometheus_query("query-range", promql)
        })
    }

    pub(crate) fn state_get(key: &str) -> Result<Option<String>, StateError> {
        with_installed("state::get", |host| host.state_get(key))
    }

    pub(crate) fn state_set(key: &str, value: &str, ttl: Option<u64>) -> Result<(), StateError> {
        with_installed("state::set", |host| host.state_set(key, value, ttl))
    }

    pub(crate) fn state_delete(key: &str) -> Result<bool, StateError> {
        with_installed("state::delete", |host| host.state_delete(key))
    }
}
