//! The interfaces of `autoheal:plugin@0.4.0` the host does not serve yet
//! (`prometheus`, `state`): every call is refused, so that a
//! component built against 0.4.0 loads and learns why. Each is replaced by
//! its capability's module as it is built.

use crate::bindings::v4;
use crate::state::HostState;

const NOT_YET: &str = "this host does not serve this capability yet";

impl v4::prometheus::Host for HostState {
    async fn query(
        &mut self,
        _promql: String,
        _time: Option<f64>,
    ) -> Result<v4::prometheus::Answer, v4::prometheus::Error> {
        Err(v4::prometheus::Error::Denied(NOT_YET.into()))
    }

    async fn query_range(
        &mut self,
        _promql: String,
        _start: f64,
        _end: f64,
        _step_seconds: f64,
    ) -> Result<v4::prometheus::Answer, v4::prometheus::Error> {
        Err(v4::prometheus::Error::Denied(NOT_YET.into()))
    }
}

impl v4::state::Host for HostState {
    async fn get(&mut self, _key: String) -> Result<Option<String>, v4::state::Error> {
        Err(v4::state::Error::Denied(NOT_YET.into()))
    }

    async fn set(
        &mut self,
        _key: String,
        _value: String,
        _ttl_seconds: Option<u64>,
    ) -> Result<(), v4::state::Error> {
        Err(v4::state::Error::Denied(NOT_YET.into()))
    }

    async fn delete(&mut self, _key: String) -> Result<bool, v4::state::Error> {
        Err(v4::state::Error::Denied(NOT_YET.into()))
    }
}
