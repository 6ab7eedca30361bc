//! The interfaces of `autoheal:plugin@0.4.0` the host does not serve yet
//! (`http`): every call is refused, so that a
//! component built against 0.4.0 loads and learns why. Each is replaced by
//! its capability's module as it is built.

use crate::bindings::v4;
use crate::state::HostState;

const NOT_YET: &str = "this host does not serve this capability yet";

impl v4::http::Host for HostState {
    async fn request(
        &mut self,
        _request: v4::http::OutboundRequest,
    ) -> Result<v4::http::InboundResponse, v4::http::Error> {
        Err(v4::http::Error::Denied(NOT_YET.into()))
    }
}
