//! Actions that wait for an operator: what is pending, and which approvals
//! have ended (so that deciding twice is a conflict, not a new action).
//!
//! The store holds no clock and records nothing: the remediator asks it, under
//! its lock, and writes the events. At start it is rebuilt from the trail's
//! `approval_*` events (see `remember.rs`).

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

use autoheal_core::event::{Actor, ApprovalEnded, ApprovalRequested, EventKind};

/// Approvals that may wait at once: past it an action that needs one is
/// skipped as `overloaded` (a flood of distinct alerts cannot fill memory
/// with previews nobody will read).
pub const MAX_PENDING_APPROVALS: usize = 1000;

/// Ended approvals remembered for a conflict answer; older ones are
/// forgotten (and then answered as unknown).
const ENDED_KEPT: usize = 10_000;

/// An action waiting for an operator.
#[derive(Debug, Clone, Serialize)]
pub struct PendingApproval {
    /// When it was asked for (unix seconds).
    pub requested_at: f64,
    /// Everything the approved action needs, as recorded.
    #[serde(flatten)]
    pub request: ApprovalRequested,
    /// Who granted so far, in order (`approval_recorded`), when it needs
    /// more than one grant.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approved_by: Vec<Actor>,
}

impl PendingApproval {
    /// How `GET /approvals` (and etcd, on a replica) lists it.
    pub fn listing(&self, replica: Option<String>) -> autoheal_api::approvals::ApprovalListing {
        autoheal_api::approvals::ApprovalListing {
            requested_at: self.requested_at,
            request: self.request.clone(),
            replica,
            expires_in_sec: None,
            truncated: false,
            approved_by: self
                .approved_by
                .iter()
                .map(autoheal_api::approvals::ApprovedBy::from)
                .collect(),
        }
    }

    /// The event that ends it: who (if anyone: the verified principal and
    /// what they typed as `by`), why, and who had granted it.
    pub fn ended(
        &self,
        by: Option<&Actor>,
        by_comment: Option<String>,
        comment: Option<String>,
    ) -> ApprovalEnded {
        ApprovalEnded {
            alertname: self.request.alertname.clone(),
            approval: self.request.approval.clone(),
            approved_by: self.approved_by.clone(),
            by: by.map(|a| a.id.clone()),
            by_comment,
            by_kind: by.map(|a| a.kind.clone()),
            by_name: by.and_then(|a| a.name.clone()),
            comment,
            fingerprint: self.request.fingerprint.clone(),
            plugin: self.request.plugin.clone(),
            reason: None,
        }
    }
}

/// Why an approval cannot be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotPending {
    /// No approval has this id (or it ended long ago).
    #[error("no approval has this id")]
    Unknown,
    /// It was decided already, or expired, or was cancelled: the kind says which.
    #[error("this approval has already ended")]
    Ended(EventKind),
}

/// The pending approvals and the recently ended ones.
#[derive(Default)]
pub struct Approvals {
    pending: BTreeMap<String, PendingApproval>,
    ended: HashMap<String, EventKind>,
    ended_order: VecDeque<String>,
}

impl Approvals {
    /// Holds `request` until it is decided, expires or is cancelled.
    pub fn insert(&mut self, request: ApprovalRequested, requested_at: f64) {
        let id = request.approval.clone();
        self.pending.insert(
            id,
            PendingApproval {
                requested_at,
                request,
                approved_by: Vec::new(),
            },
        );
    }

    /// The approval `id`, still pending; else why not.
    pub fn get(&self, id: &str) -> Result<&PendingApproval, NotPending> {
        if let Some(kind) = self.ended.get(id) {
            return Err(NotPending::Ended(*kind));
        }
        self.pending.get(id).ok_or(NotPending::Unknown)
    }

    /// Records a grant that left `id` waiting for more.
    pub fn add_grant(&mut self, id: &str, by: Actor) {
        if let Some(pending) = self.pending.get_mut(id) {
            pending.approved_by.push(by);
        }
    }

    /// Takes back a grant whose `approval_recorded` could not be written.
    pub fn remove_grant(&mut self, id: &str, by: &Actor) {
        if let Some(pending) = self.pending.get_mut(id) {
            pending.approved_by.retain(|a| !a.same(by));
        }
    }

    /// Every pending approval, oldest first.
    pub fn pending(&self) -> Vec<PendingApproval> {
        let mut all: Vec<_> = self.pending.values().cloned().collect();
        all.sort_by(|a, b| a.requested_at.total_cmp(&b.requested_at));
        all
    }

    /// How many are pending.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether none is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Whether an action with this cooldown key already waits.
    pub fn waits_for(&self, cooldown_key: &str) -> bool {
        self.pending
            .values()
            .any(|p| p.request.cooldown_key == cooldown_key)
    }

    /// Takes the approval `id` out to be decided; `kind` is how it ends.
    pub fn take(&mut self, id: &str, kind: EventKind) -> Result<PendingApproval, NotPending> {
        self.take_judged(id, |_| (kind, ())).map(|(pending, ())| pending)
    }

    /// Takes the approval `id` out, ending it as `judge` says on seeing it
    /// (an answer may find it expired, or stale), in one step under the
    /// caller's lock: no other answer or tick can take it in between.
    pub fn take_judged<T>(
        &mut self,
        id: &str,
        judge: impl FnOnce(&PendingApproval) -> (EventKind, T),
    ) -> Result<(PendingApproval, T), NotPending> {
        if let Some(kind) = self.ended.get(id) {
            return Err(NotPending::Ended(*kind));
        }
        let pending = self.pending.remove(id).ok_or(NotPending::Unknown)?;
        let (kind, judged) = judge(&pending);
        self.end(id.to_owned(), kind);
        Ok((pending, judged))
    }

    /// Takes out every approval past its deadline at `now`.
    pub fn take_expired(&mut self, now: f64) -> Vec<PendingApproval> {
        self.take_where(EventKind::ApprovalExpired, |p| p.request.expires_at <= now)
    }

    /// Takes out every approval for the alert `fingerprint` (it resolved).
    pub fn take_for_alert(&mut self, fingerprint: &str) -> Vec<PendingApproval> {
        self.take_where(EventKind::ApprovalCancelled, |p| {
            p.request.fingerprint == fingerprint
        })
    }

    /// Puts back an approval taken out whose ending could not be recorded.
    pub fn restore(&mut self, pending: PendingApproval) {
        let id = pending.request.approval.clone();
        self.ended.remove(&id);
        self.ended_order.retain(|e| e != &id);
        self.pending.insert(id, pending);
    }

    /// Drops a pending approval that was never recorded.
    pub fn forget(&mut self, id: &str) {
        self.pending.remove(id);
    }

    /// Remembers that `id` ended as `kind` (also while reading the trail back).
    pub fn end(&mut self, id: String, kind: EventKind) {
        if self.ended.insert(id.clone(), kind).is_none() {
            self.ended_order.push_back(id);
        }
        while self.ended_order.len() > ENDED_KEPT {
            if let Some(old) = self.ended_order.pop_front() {
                self.ended.remove(&old);
            }
        }
    }

    /// Whether `id` is known to have ended.
    pub fn has_ended(&self, id: &str) -> bool {
        self.ended.contains_key(id)
    }

    fn take_where(
        &mut self,
        kind: EventKind,
        mut pick: impl FnMut(&PendingApproval) -> bool,
    ) -> Vec<PendingApproval> {
        let ids: Vec<String> = self
            .pending
            .values()
            .filter(|p| pick(p))
            .map(|p| p.request.approval.clone())
            .collect();
        ids.iter().filter_map(|id| self.take(id, kind).ok()).collect()
    }
}

/// A new approval id: 16 random hex digits (ids are not secrets — the
/// routes take the operator token — but they must not repeat across restarts).
pub fn new_approval_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: the time in nanoseconds is unique enough here.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        bytes = nanos.to_be_bytes();
    }
    hex::encode(bytes)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use autoheal_core::alert::{Alert, AlertStatus};
    use autoheal_core::event::ApprovalCause;

    /// An approval request of plugin `p` on alert `A`, for the unit tests of remediation.
    pub(in crate::remediation) fn request(id: &str, fingerprint: &str, expires_at: f64) -> ApprovalRequested {
        ApprovalRequested {
            alert: Alert {
                status: AlertStatus::Firing,
                labels: Default::default(),
                annotations: Default::default(),
                starts_at: String::new(),
                ends_at: None,
                generator_url: String::new(),
                fingerprint: fingerprint.into(),
            },
            alertname: "A".into(),
            approval: id.into(),
            approvals_required: None,
            approvers: Vec::new(),
            calls: Vec::new(),
            chain: None,
            cause: ApprovalCause::Manifest,
            component_hash: None,
            cooldown_key: format!("p|A|{fingerprint}"),
            expires_at,
            fingerprint: fingerprint.into(),
            manifest_hash: None,
            plugin: "p".into(),
            plugin_version: "1".into(),
            preview: Vec::new(),
            requested_by: None,
            summary: None,
        }
    }

    #[test]
    fn an_approval_is_decided_once() {
        let mut approvals = Approvals::default();
        approvals.insert(request("a", "f1", 100.0), 1.0);
        assert!(approvals.waits_for("p|A|f1"));
        assert_eq!(
            approvals.take("b", EventKind::ApprovalGranted).unwrap_err(),
            NotPending::Unknown
        );
        assert!(approvals.take("a", EventKind::ApprovalGranted).is_ok());
        assert_eq!(
            approvals.take("a", EventKind::ApprovalDenied).unwrap_err(),
            NotPending::Ended(EventKind::ApprovalGranted)
        );
        assert!(!approvals.waits_for("p|A|f1"));
    }

    #[test]
    fn expiry_and_resolution_take_only_their_own() {
        let mut approvals = Approvals::default();
        approvals.insert(request("a", "f1", 100.0), 1.0);
        approvals.insert(request("b", "f2", 200.0), 2.0);
        approvals.insert(request("c", "f2", 300.0), 3.0);
        assert!(approvals.take_expired(99.0).is_empty());
        let expired = approvals.take_expired(100.0);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].request.approval, "a");
        let cancelled = approvals.take_for_alert("f2");
        assert_eq!(cancelled.len(), 2);
        assert!(approvals.is_empty());
        assert_eq!(
            approvals.take("c", EventKind::ApprovalGranted).unwrap_err(),
            NotPending::Ended(EventKind::ApprovalCancelled)
        );
    }

    #[test]
    fn a_judged_approval_ends_as_judged() {
        let mut approvals = Approvals::default();
        approvals.insert(request("a", "f1", 100.0), 1.0);
        let (taken, late) = approvals
            .take_judged("a", |p| {
                (EventKind::ApprovalExpired, 100.5 - p.request.expires_at)
            })
            .unwrap();
        assert_eq!((taken.request.approval.as_str(), late), ("a", 0.5));
        assert_eq!(
            approvals.take("a", EventKind::ApprovalGranted).unwrap_err(),
            NotPending::Ended(EventKind::ApprovalExpired)
        );
    }

    #[test]
    fn a_taken_approval_can_be_put_back() {
        let mut approvals = Approvals::default();
        approvals.insert(request("a", "f1", 100.0), 1.0);
        let taken = approvals.take("a", EventKind::ApprovalGranted).unwrap();
        approvals.restore(taken);
        assert_eq!(approvals.len(), 1);
        assert!(!approvals.has_ended("a"));
    }

    #[test]
    fn ids_do_not_repeat() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_approval_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.len() == 16));
    }
}
