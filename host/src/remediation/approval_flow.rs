//! The approval flow: an action that needs an operator runs first as a
//! dry-run preview; then it waits ([`ApprovalFlow::request`]) until an
//! operator answers ([`ApprovalFlow::answer`]), it expires
//! ([`ApprovalFlow::expire`]), or its alert resolves
//! ([`ApprovalFlow::cancel_for_alert`]). Each ending is recorded here; a
//! granted approval is handed back to the caller, which runs the action
//! and records `approval_granted` together with its dispatch.

use std::sync::{Arc, Mutex, MutexGuard};

use autoheal_containers::ContainerRuntime;
use autoheal_core::alert::Alert;
use autoheal_core::audit::{AuditError, AuditLog};
use autoheal_core::event::{
    ApprovalCause, ApprovalEnded, ApprovalRequested, CancelReason, ChainStep, EventBody, EventKind,
};
use autoheal_core::invocation::CapabilityCall;
use autoheal_core::util::unix_now;
use autoheal_sandbox::registry::{Plugin, PluginSet};

use super::approvals::{Approvals, NotPending, PendingApproval, new_approval_id};
use super::decide::{SkipReason, Verdict};
use super::stale::Stale;

/// What a preview found, for its approval.
pub(super) struct Asked {
    pub(super) cause: ApprovalCause,
    pub(super) cooldown_key: String,
    pub(super) chain: Option<ChainStep>,
    pub(super) calls: Vec<CapabilityCall>,
    pub(super) summary: Option<String>,
}

/// Why an approval could not be decided.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// Not pending: unknown, or ended already.
    #[error(transparent)]
    NotPending(#[from] NotPending),
    /// Answered after its `expires_at`: it ended as `approval_expired` now.
    #[error("approval_expired: the approval expired {late_sec:.3} s before this answer; nothing ran")]
    Expired {
        /// How long after `expires_at` the answer came, in seconds.
        late_sec: f64,
    },
    /// Approved, but its plugin is no longer the version its preview ran:
    /// it ended as `approval_cancelled` (`reason: approval_stale`).
    #[error(
        "approval_stale: {0}; nothing ran and the approval is cancelled (once the cooldown its preview began runs out, the alert is decided afresh with the plugin loaded then, and a new preview)"
    )]
    Stale(Stale),
    /// The decision could not be recorded; the approval still waits.
    #[error("the decision could not be recorded, the approval still waits: {0}")]
    Audit(#[from] AuditError),
}

/// An approval an operator granted, taken out of the pending ones; its
/// `approval_granted` is not recorded yet.
pub(super) struct Granted {
    pub(super) pending: PendingApproval,
    /// The version of the plugin its preview ran.
    pub(super) plugin: Arc<Plugin>,
    pub(super) by: Option<String>,
    pub(super) comment: Option<String>,
}

impl Granted {
    /// Its `approval_granted`.
    pub(super) fn event(&self) -> EventBody {
        EventBody::ApprovalGranted(self.pending.ended(self.by.clone(), self.comment.clone()))
    }
}

/// How an answered approval ends.
enum Ending {
    /// Approved; it runs this plugin, the version its preview ran.
    Granted(Arc<Plugin>),
    Denied,
    /// Answered after its `expires_at`, before the tick expired it.
    Expired,
    /// Approved, but what its preview ran is no longer loaded.
    Stale(Stale),
}

impl Ending {
    /// How `pending`, answered `grant` at `now` with `plugins` loaded, ends.
    /// Expiry comes first: a late answer, yes or no, changes nothing.
    fn of(pending: &PendingApproval, grant: bool, now: f64, plugins: &PluginSet) -> Self {
        if pending.request.expires_at <= now {
            return Self::Expired;
        }
        if !grant {
            return Self::Denied;
        }
        match super::stale::previewed(&pending.request, plugins) {
            Ok(plugin) => Self::Granted(plugin),
            Err(stale) => Self::Stale(stale),
        }
    }

    /// The kind of event that ends it.
    fn kind(&self) -> EventKind {
        match self {
            Self::Granted(_) => EventKind::ApprovalGranted,
            Self::Denied => EventKind::ApprovalDenied,
            Self::Expired => EventKind::ApprovalExpired,
            Self::Stale(_) => EventKind::ApprovalCancelled,
        }
    }
}

/// The actions waiting for an operator, and the recording of how each ends.
pub(super) struct ApprovalFlow {
    approvals: Mutex<Approvals>,
    audit: Arc<AuditLog>,
    /// Asked about the containers a preview would restart.
    containers: Arc<dyn ContainerRuntime>,
}

impl ApprovalFlow {
    /// The flow over `approvals` (as remembered from the trail).
    pub(super) fn new(
        approvals: Approvals,
        audit: Arc<AuditLog>,
        containers: Arc<dyn ContainerRuntime>,
    ) -> Self {
        Self {
            approvals: Mutex::new(approvals),
            audit,
            containers,
        }
    }

    fn approvals(&self) -> MutexGuard<'_, Approvals> {
        self.approvals.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The actions waiting for an operator, oldest first.
    pub(super) fn pending(&self) -> Vec<PendingApproval> {
        self.approvals().pending()
    }

    /// How many wait.
    pub(super) fn len(&self) -> usize {
        self.approvals().len()
    }

    /// A skip, `awaiting_approval`, for an action that already waits for an
    /// operator (its approval may outlast its cooldown).
    pub(super) fn unless_awaiting(&self, verdict: Verdict) -> Verdict {
        match &verdict {
            Verdict::Act {
                plugin, cooldown_key, ..
            } if self.approvals().waits_for(cooldown_key) => Verdict::skip_by(
                SkipReason::AwaitingApproval,
                &plugin.manifest.name,
                format!(
                    "{}'s action on this alert waits for an operator (GET /approvals)",
                    plugin.manifest.name
                ),
            ),
            _ => verdict,
        }
    }

    /// The preview ran: the action waits for an operator from now on. The
    /// request is committed durably: an approval survives a restart.
    pub(super) async fn request(&self, plugin: &Plugin, alert: &Alert, asked: Asked) {
        let preview = super::preview::preview(&asked.calls, &*self.containers).await;
        let now = unix_now();
        let request = ApprovalRequested {
            alert: alert.clone(),
            alertname: alert.alertname().to_owned(),
            approval: new_approval_id(),
            calls: asked.calls,
            chain: asked.chain,
            cause: asked.cause,
            // The version the preview ran: approving runs that one or nothing.
            component_hash: Some(plugin.component.hash.clone()),
            cooldown_key: asked.cooldown_key,
            expires_at: now + plugin.manifest.approval_expires.as_secs_f64(),
            fingerprint: alert.fingerprint.clone(),
            manifest_hash: Some(plugin.manifest_hash.clone()),
            plugin: plugin.manifest.name.clone(),
            plugin_version: plugin.manifest.version.clone(),
            preview,
            summary: asked.summary,
        };
        let id = request.approval.clone();
        tracing::info!(approval = %id, plugin = %request.plugin, alertname = %request.alertname, "an action waits for approval");
        self.approvals().insert(request.clone(), now);
        if let Err(e) = self
            .audit
            .emit_all_durable(vec![EventBody::ApprovalRequested(request)])
            .await
        {
            // Unrecorded, it could not survive a restart: it does not wait.
            tracing::error!(approval = %id, error = %e, "approval not recorded; the action does not run");
            self.approvals().forget(&id);
        }
    }

    /// An operator's answer to approval `id`, judged with `plugins` loaded.
    /// Granted, it is handed back (the caller runs it, and records it
    /// granted, or gives it back with [`ApprovalFlow::restore`]). Denied, it
    /// is recorded. An approval past its `expires_at` (the tick may not
    /// have seen it yet) ends as expired, and one whose plugin is no longer
    /// the version previewed ends as cancelled (`approval_stale`): both are
    /// recorded and refused.
    pub(super) async fn answer(
        &self,
        id: &str,
        grant: bool,
        by: Option<String>,
        comment: Option<String>,
        plugins: &PluginSet,
    ) -> Result<Option<Granted>, ApprovalError> {
        let now = unix_now();
        let (pending, ending) = self.approvals().take_judged(id, |p| {
            let ending = Ending::of(p, grant, now, plugins);
            (ending.kind(), ending)
        })?;
        let (event, error) = match ending {
            Ending::Granted(plugin) => {
                return Ok(Some(Granted {
                    pending,
                    plugin,
                    by,
                    comment,
                }));
            }
            Ending::Denied => {
                let denied = EventBody::ApprovalDenied(pending.ended(by, comment));
                if let Err(e) = self.audit.emit_all_durable(vec![denied]).await {
                    self.restore(pending);
                    return Err(e.into());
                }
                return Ok(None);
            }
            Ending::Expired => {
                let late_sec = now - pending.request.expires_at;
                tracing::info!(approval = %id, plugin = %pending.request.plugin, late_sec, "an answer came after the approval expired");
                let detail = format!("answered {late_sec:.3} s after it expired; nothing ran");
                let expired = EventBody::ApprovalExpired(pending.ended(by, Some(detail)));
                (expired, ApprovalError::Expired { late_sec })
            }
            Ending::Stale(stale) => {
                tracing::warn!(approval = %id, plugin = %pending.request.plugin, %stale, "an approved action is not run: its plugin is not the version previewed");
                let cancelled = EventBody::ApprovalCancelled(ApprovalEnded {
                    reason: Some(CancelReason::ApprovalStale),
                    ..pending.ended(by, Some(format!("approval_stale: {stale}; nothing ran")))
                });
                (cancelled, ApprovalError::Stale(stale))
            }
        };
        if let Err(e) = self.audit.emit_all_durable(vec![event]).await {
            self.restore(pending);
            return Err(e.into());
        }
        Err(error)
    }

    /// Puts back an approval whose ending could not be recorded: it waits again.
    pub(super) fn restore(&self, pending: PendingApproval) {
        self.approvals().restore(pending);
    }

    /// The alert `fingerprint` resolved: its pending approvals are
    /// cancelled; their events, to be recorded by the caller.
    pub(super) fn cancel_for_alert(&self, fingerprint: &str) -> Vec<EventBody> {
        self.approvals()
            .take_for_alert(fingerprint)
            .into_iter()
            .map(|p| {
                EventBody::ApprovalCancelled(ApprovalEnded {
                    reason: Some(CancelReason::AlertResolved),
                    ..p.ended(None, Some("the alert resolved before anyone decided".into()))
                })
            })
            .collect()
    }

    /// Approvals past their deadline at `now` expire.
    pub(super) fn expire(&self, now: f64) {
        let expired = self.approvals().take_expired(now);
        if expired.is_empty() {
            return;
        }
        let events = expired
            .into_iter()
            .map(|p| {
                tracing::info!(approval = %p.request.approval, plugin = %p.request.plugin, "approval expired");
                EventBody::ApprovalExpired(p.ended(None, Some("nobody decided before it expired".into())))
            })
            .collect();
        self.audit.emit_all(events);
    }
}
