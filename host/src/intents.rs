//! Restart intents in the audit trail: a real restart is sent only once its
//! `restart_intent` is committed (fsynced under the default policy), so no
//! restart happens without a record, and one cut short by a crash is still
//! counted by the breaker at the next start (see
//! [`autoheal_sandbox::breaker::RestartBreaker::rebuild`]).

use std::sync::Arc;

use autoheal_core::audit::AuditLog;
use autoheal_core::event::{EventBody, RestartIntent};
use autoheal_sandbox::capability::{IntentError, IntentLog};

/// The audit trail as the sandbox's [`IntentLog`].
pub struct AuditIntents {
    audit: Arc<AuditLog>,
}

impl AuditIntents {
    /// Intents recorded in `audit`.
    pub fn new(audit: Arc<AuditLog>) -> Self {
        Self { audit }
    }
}

#[async_trait::async_trait]
impl IntentLog for AuditIntents {
    async fn restart_intent(&self, plugin: &str, container: &str) -> Result<Option<u64>, IntentError> {
        let intent = EventBody::RestartIntent(RestartIntent {
            container: container.to_owned(),
            plugin: plugin.to_owned(),
        });
        match self.audit.emit_durable(intent).await {
            Ok(event) => Ok(Some(event.id)),
            Err(e) => Err(IntentError(e.to_string())),
        }
    }
}
