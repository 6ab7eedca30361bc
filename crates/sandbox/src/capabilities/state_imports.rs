//! The `state` interface (0.4.0 on), served by the gate.

use crate::bindings::v4::state as wit;
use crate::capability::GateError;
use crate::state::HostState;

impl wit::Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<String>, wit::Error> {
        self.gate.state_get(key).await.map_err(error)
    }

    async fn set(&mut self, key: String, value: String, ttl_seconds: Option<u64>) -> Result<(), wit::Error> {
        self.gate.state_set(key, value, ttl_seconds).await.map_err(error)
    }

    async fn delete(&mut self, key: String) -> Result<bool, wit::Error> {
        self.gate.state_delete(key).await.map_err(error)
    }
}

fn error(e: GateError) -> wit::Error {
    match e {
        GateError::Denied(m) => wit::Error::Denied(m),
        GateError::NotFound(m) | GateError::Runtime(m) | GateError::Timeout(m) => wit::Error::Failed(m),
    }
}
