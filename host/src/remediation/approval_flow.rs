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
    Actor, ApprovalCause, ApprovalEnded, ApprovalRecorded, ApprovalRequested, CancelReason, ChainStep,
    EventBody, EventKind,
};
use autoheal_core::invocation::CapabilityCall;
use autoheal_core::util::unix_now;
use autoheal_sandbox::registry::{Plugin, PluginSet};

use super::approval_policy::{self, AlreadyApproved, Tally};
use super::approvals::{Approvals, NotPending, PendingApproval, new_approval_id};
use super::decide::{SkipReason, Verdict};
use super::stale::Stale;
use crate::auth::{Principal, Role};

/// What a preview found, for its approval.
pub(super) struct Asked {
    pub(super) cause: ApprovalCause,
    pub(super) cooldown_key: String,
    pub(super) chain: Option<ChainStep>,
    pub(super) calls: Vec<CapabilityCall>,
    pub(super) summary: Option<String>,
    /// Who sent the webhook that asked for it.
    pub(super) requested_by: Option<Actor>,
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
    /// The caller may not answer it: no approver role on its plugin, or
    /// not among its `[policy] approvers` (the 403's message).
    #[error("{0}")]
    Forbidden(String),
    /// The caller granted it already; it waits for someone else.
    #[error(transparent)]
    AlreadyApproved(#[from] AlreadyApproved),
    /// The decision could not be recorded; the approval still waits.
    #[error("the decision could not be recorded, the approval still waits: {0}")]
    Audit(#[from] AuditError),
}

/// An approval an operator granted, taken out of the pending ones; its
/// `approval_granted` is not recorded yet.
pub(super) struct Granted {
    /// Its grants include the last one.
    pub(super) pending: PendingApproval,
    /// The version of the plugin its preview ran.
    pub(super) plugin: Arc<Plugin>,
    pub(super) by: Actor,
    pub(super) by_comment: Option<String>,
    pub(super) comment: Option<String>,
}

impl Granted {
    /// Its `approval_granted`.
    pub(super) fn event(&self) -> EventBody {
        EventBody::ApprovalGranted(self.pending.ended(
            Some(&self.by),
            self.by_comment.clone(),
            self.comment.clone(),
        ))
    }
}

/// What an answer did.
pub(super) enum Answered {
    /// Enough grants: the caller runs it.
    Granted(Box<Granted>),
    /// Denied, and recorded.
    Denied,
    /// A grant recorded; it waits for more.
    Recorded {
        /// Grants so far.
        approvals: u32,
        /// Grants needed.
        required: u32,
    },
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
            approvals_required: Some(plugin.manifest.approvals_required),
            approvers: plugin
                .manifest
                .approvers
                .iter()
                .map(ToString::to_string)
                .collect(),
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
            requested_by: asked.requested_by,
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

    /// An approver's answer to approval `id`, judged with `plugins` loaded.
    /// `principal` must hold the approver role on its plugin and match its
    /// `[policy] approvers`. A grant that leaves it short of
    /// `approvals_required` (see `approval_policy`) is recorded
    /// (`approval_recorded`) and it waits on; the grant that completes it
    /// hands it back (the caller runs it, and records it granted, or gives
    /// it back with [`ApprovalFlow::restore`]). Denied, it is recorded. An
    /// approval past its `expires_at` (the tick may not have seen it yet)
    /// ends as expired, and one whose plugin is no longer the version
    /// previewed ends as cancelled (`approval_stale`): both are recorded
    /// and refused.
    pub(super) async fn answer(
        &self,
        id: &str,
        grant: bool,
        principal: &Principal,
        by_comment: Option<String>,
        comment: Option<String>,
        plugins: &PluginSet,
    ) -> Result<Answered, ApprovalError> {
        let now = unix_now();
        let by = approval_policy::actor(principal);
        let recorded = {
            let mut approvals = self.approvals();
            let pending = approvals.get(id)?;
            principal
                .may(Role::Approver, Some(&pending.request.plugin))
                .map_err(|denied| ApprovalError::Forbidden(denied.message))?;
            approval_policy::eligible(principal, &pending.request)
                .map_err(|refused| ApprovalError::Forbidden(refused.0))?;
            let tally = match grant && pending.request.expires_at > now {
                true => approval_policy::tally(&pending.request, &pending.approved_by, &by)?,
                false => Tally::Complete,
            };
            match tally {
                Tally::Complete => None,
                Tally::Waiting {
                    approvals: so_far,
                    required,
                } => {
                    let event = ApprovalRecorded {
                        alertname: pending.request.alertname.clone(),
                        approval: id.to_owned(),
                        approvals: so_far,
                        approvals_required: required,
                        by: by.id.clone(),
                        by_comment: by_comment.clone(),
                        by_kind: by.kind.clone(),
                        by_name: by.name.clone(),
                        comment: comment.clone(),
                        fingerprint: pending.request.fingerprint.clone(),
                        plugin: pending.request.plugin.clone(),
                    };
                    // Under the lock: a second grant from the same
                    // principal, racing this one, finds it.
                    approvals.add_grant(id, by.clone());
                    Some((event, so_far, required))
                }
            }
        };
        if let Some((event, approvals, required)) = recorded {
            tracing::info!(approval = %id, by = %by.id, approvals, required, "an approval grant recorded; it waits for more");
            if let Err(e) = self
                .audit
                .emit_all_durable(vec![EventBody::ApprovalRecorded(event)])
                .await
            {
                self.approvals().remove_grant(id, &by);
                return Err(e.into());
            }
            return Ok(Answered::Recorded { approvals, required });
        }
        let (mut pending, ending) = self.approvals().take_judged(id, |p| {
            let ending = Ending::of(p, grant, now, plugins);
            (ending.kind(), ending)
        })?;
        let (event, error) = match ending {
            Ending::Granted(plugin) => {
                pending.approved_by.push(by.clone());
                return Ok(Answered::Granted(Box::new(Granted {
                    pending,
                    plugin,
                    by,
                    by_comment,
                    comment,
                })));
            }
            Ending::Denied => {
                let denied = EventBody::ApprovalDenied(pending.ended(Some(&by), by_comment, comment));
                if let Err(e) = self.audit.emit_all_durable(vec![denied]).await {
                    self.restore(pending);
                    return Err(e.into());
                }
                return Ok(Answered::Denied);
            }
            Ending::Expired => {
                let late_sec = now - pending.request.expires_at;
                tracing::info!(approval = %id, plugin = %pending.request.plugin, late_sec, "an answer came after the approval expired");
                let detail = format!("answered {late_sec:.3} s after it expired; nothing ran");
                let expired = EventBody::ApprovalExpired(pending.ended(Some(&by), by_comment, Some(detail)));
                (expired, ApprovalError::Expired { late_sec })
            }
            Ending::Stale(stale) => {
                tracing::warn!(approval = %id, plugin = %pending.request.plugin, %stale, "an approved action is not run: its plugin is not the version previewed");
                let cancelled = EventBody::ApprovalCancelled(ApprovalEnded {
                    reason: Some(CancelReason::ApprovalStale),
                    ..pending.ended(
                        Some(&by),
                        by_comment,
                        Some(format!("approval_stale: {stale}; nothing ran")),
                    )
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
                    ..p.ended(
                        None,
                        None,
                        Some("the alert resolved before anyone decided".into()),
                    )
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
                EventBody::ApprovalExpired(p.ended(None, None, Some("nobody decided before it expired".into())))
            })
            .collect();
        self.audit.emit_all(events);
    }
}
