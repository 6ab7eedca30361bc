//! Intents in the audit trail: a real effect is sent only once its intent
//! is committed (fsynced under the default policy): `restart_intent` for a
//! restart, `effect_intent` for a signal or a command. So no effect happens
//! without a record, and one cut short by a crash is still counted by its
//! breaker at the next start (see
//! [`autoheal_sandbox::breaker::RestartBreaker::rebuild`]).

use std::sync::Arc;

use autoheal_core::audit::AuditLog;
use autoheal_core::event::{EffectIntent, EventBody, RestartIntent};
use autoheal_core::invocation::Capability;
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
    async fn intent(
        &self,
        plugin: &str,
        capability: Capability,
        target: &str,
        detail: &str,
    ) -> Result<Option<u64>, IntentError> {
        let intent = match capability {
            Capability::ContainersRestart => EventBody::RestartIntent(RestartIntent {
                container: target.to_owned(),
                plugin: plugin.to_owned(),
            }),
            _ => EventBody::EffectIntent(EffectIntent {
                capability,
                target: target.to_owned(),
                detail: detail.to_owned(),
                plugin: plugin.to_owned(),
            }),
        };
        match self.audit.emit_durable(intent).await {
            Ok(event) => Ok(Some(event.id)),
            Err(e) => Err(IntentError(e.to_string())),
        }
    }
}
