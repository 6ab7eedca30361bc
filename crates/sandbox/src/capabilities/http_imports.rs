//! The `http` interface of `autoheal:plugin@0.4.0`, served by the gate.

use crate::bindings::v4::http::{Error, Host, InboundResponse, OutboundRequest};
use crate::capability::GateError;
use crate::state::HostState;

use super::http::HttpCall;

impl Host for HostState {
    async fn request(&mut self, request: OutboundRequest) -> Result<InboundResponse, Error> {
        let call = HttpCall {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
            secrets: request.secrets,
        };
        match self.gate.http_request(call).await {
            Ok(Some(inbound)) => Ok(InboundResponse {
                sent: true,
                status: inbound.status,
                headers: inbound.headers,
                body: inbound.body,
                truncated: inbound.truncated,
            }),
            Ok(None) => Ok(InboundResponse {
                sent: false,
                status: 0,
                headers: Vec::new(),
                body: Vec::new(),
                truncated: false,
            }),
            Err(GateError::Denied(m)) => Err(Error::Denied(m)),
            Err(GateError::Timeout(m)) => Err(Error::Timeout(m)),
            Err(GateError::NotFound(m) | GateError::Runtime(m)) => Err(Error::Failed(m)),
        }
    }
}
