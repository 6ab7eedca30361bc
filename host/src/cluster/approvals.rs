//! Pending approvals, seen and answered from any replica.
//!
//! An approval waits on the replica that asked for it (its owner, which
//! holds the action's claim). The owner publishes each pending approval
//! under `approvals/ID`, leased until it expires, and withdraws it when it
//! ends. Any replica lists them; an answer given to a replica that is not
//! the owner is written under `answers/ID/WHO`, once per principal (WHO
//! is the hex of its kind and id: an approval may need several approvers,
//! each answering on any replica), and the owner applies each within a
//! second, as if it had been given there: it applies the plugin's approver
//! policy and counts the grants.
//!
//! etcd is not trusted with answers: each carries a MAC under the cluster
//! secret over everything the owner applies (see `proof`). An answer
//! without a valid one (written to etcd by someone else) is handed to the
//! owner as refused, to be recorded and removed, never applied.
//!
//! Each published listing is at most
//! [`MAX_PUBLISHED_APPROVAL_BYTES`](super::approval_size::MAX_PUBLISHED_APPROVAL_BYTES)
//! (cut, with `truncated: true`, past it), a replica publishes at most
//! [`MAX_PUBLISHED_APPROVALS`], and a list reads at most
//! [`MAX_LISTED_APPROVALS`], so no request or response comes near etcd's
//! limits (1.5 MiB a request, 4 MiB a response) however many or large the
//! approvals are.

use autoheal_api::approvals::ApprovalListing;

use autoheal_core::util::unix_now;

use super::approval_size::fit;
use super::etcd::{Compare, CompareOp, RangeRequest, Txn, TxnOp};
use super::{Cluster, ClusterError};

/// Approvals one replica publishes at once (the oldest); the others are
/// listed and answered on that replica only.
pub const MAX_PUBLISHED_APPROVALS: usize = 64;
/// Approvals one list reads: 256 listings of 8 KiB are 2 MiB, half of what
/// a response may hold.
pub const MAX_LISTED_APPROVALS: i64 = 256;

pub use autoheal_api::cluster::SharedApproval;

pub use super::proof::RemoteAnswer;

pub use super::proof::AnswerPrincipal;

/// An answer found under `answers/ID/WHO`.
#[derive(Debug, Clone, PartialEq)]
pub enum FoundAnswer {
    /// Written by a replica holding the cluster secret: apply it (and
    /// remove it with [`Cluster::discard_answer`] once applied).
    Proven {
        /// The answer.
        answer: RemoteAnswer,
        /// The key's modification revision.
        revision: i64,
        /// The key it was read from.
        key: String,
    },
    /// Not proven (no proof, a wrong one, not an answer at all): never
    /// applied; the owner records it and removes it with
    /// [`Cluster::discard_answer`] at this `revision`.
    Refused {
        /// Why, in words (never the value itself).
        reason: &'static str,
        /// The key's modification revision.
        revision: i64,
        /// The key it was read from.
        key: String,
    },
}

/// What became of an answer given on a replica that is not the owner.
#[derive(Debug, Clone, PartialEq)]
pub enum Forwarded {
    /// Written for the owner, which applies it within a second.
    To(String),
    /// No replica publishes an approval with this id.
    Unknown,
    /// This principal answered it already (on some replica).
    AlreadyAnswered,
}

impl Cluster {
    fn approval_key(&self, id: &str) -> String {
        self.key(&format!("approvals/{id}"))
    }

    /// Where the answers to `id` are: `answers/ID` (a replica older than
    /// principals wrote there) and `answers/ID/WHO`.
    fn answer_key(&self, id: &str) -> String {
        self.key(&format!("answers/{id}"))
    }

    /// Where `principal`'s answer to `id` is written.
    fn principal_answer_key(&self, id: &str, principal: &AnswerPrincipal) -> String {
        let who = hex::encode(format!("{}:{}", principal.kind, principal.id));
        format!("{}/{who}", self.answer_key(id))
    }

    pub(super) async fn get_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, ClusterError> {
        Ok(self
            .get_prefix_revisions(prefix, 0)
            .await?
            .into_iter()
            .map(|(key, value, _)| (key, value))
            .collect())
    }

    /// As `get_prefix`, the first `limit` keys (0: all), with each key's
    /// modification revision.
    async fn get_prefix_revisions(
        &self,
        prefix: &str,
        limit: i64,
    ) -> Result<Vec<(String, Vec<u8>, i64)>, ClusterError> {
        let response = self.range(&RangeRequest::prefix(prefix, limit)).await?;
        Ok(response
            .kvs
            .into_iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    kv.value,
                    kv.mod_revision,
                )
            })
            .collect())
    }

    /// The values under `prefix` (the first `limit`; 0: all) that parse as
    /// `T`, by what follows the prefix.
    pub(super) async fn entries<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
        limit: i64,
    ) -> Result<Vec<(String, T)>, ClusterError> {
        Ok(self
            .get_prefix_revisions(prefix, limit)
            .await?
            .into_iter()
            .filter_map(|(key, value, _)| {
                let id = key.strip_prefix(prefix)?.to_owned();
                Some((id, serde_json::from_slice(&value).ok()?))
            })
            .collect())
    }

    /// The published approvals (at most `MAX_LISTED_APPROVALS`), by id.
    pub async fn shared_approvals(&self) -> Result<Vec<(String, SharedApproval)>, ClusterError> {
        self.entries(&self.approval_key(""), MAX_LISTED_APPROVALS).await
    }

    /// Publishes this replica's pending approval `id` until `expires_at`,
    /// cut to `MAX_PUBLISHED_APPROVAL_BYTES`.
    pub async fn publish_approval(
        &self,
        id: &str,
        listing: ApprovalListing,
        expires_at: f64,
    ) -> Result<(), ClusterError> {
        // A little past the expiry: the owner withdraws it when it expires.
        let ttl = ((expires_at - unix_now()).ceil() as i64 + 5).max(super::MIN_CLAIM_TTL_SEC);
        let lease = self.grant(ttl).await?;
        let shared = SharedApproval {
            replica: self.replica().to_owned(),
            listing: fit(listing),
        };
        let value = serde_json::to_vec(&shared).expect("a listing serializes");
        let put = Txn::new().and_then([TxnOp::put(self.approval_key(id), value, Some(lease))]);
        self.txn(&put).await.map(|_| ())
    }

    /// Withdraws approval `id` and every answer to it.
    pub async fn withdraw_approval(&self, id: &str) -> Result<(), ClusterError> {
        let delete = Txn::new().and_then([
            TxnOp::delete(self.approval_key(id)),
            TxnOp::delete(self.answer_key(id)),
            TxnOp::delete_prefix(format!("{}/", self.answer_key(id))),
        ]);
        self.txn(&delete).await.map(|_| ())
    }

    /// Writes `principal`'s answer to approval `id` (given on this
    /// replica), signed, for its owner, unless it is not published or this
    /// principal answered it already.
    pub async fn answer_approval(
        &self,
        id: &str,
        grant: bool,
        principal: AnswerPrincipal,
        by: Option<String>,
        comment: Option<String>,
    ) -> Result<Forwarded, ClusterError> {
        let reply = self.principal_answer_key(id, &principal);
        let mut answer = RemoteAnswer {
            grant,
            by,
            comment,
            via: self.replica().to_owned(),
            at: unix_now(),
            principal: Some(principal),
            proof: String::new(),
        };
        answer.proof = self.settings.secret.sign_answer(id, &answer.fields());
        let approval = self.approval_key(id);
        let value = serde_json::to_vec(&answer).expect("an answer serializes");
        let txn = Txn::new()
            .when([
                Compare::create_revision(approval.clone(), CompareOp::Greater, 0),
                Compare::create_revision(reply.clone(), CompareOp::Equal, 0),
            ])
            .and_then([
                TxnOp::put(reply.clone(), value, None),
                TxnOp::get(approval.clone()),
            ])
            .or_else([TxnOp::get(approval)]);
        let response = self.txn(&txn).await?;
        let owner = response.gets().find_map(|get| {
            get.kvs
                .first()
                .and_then(|kv| serde_json::from_slice::<SharedApproval>(&kv.value).ok())
        });
        Ok(match (response.succeeded, owner) {
            (true, Some(owner)) => Forwarded::To(owner.replica),
            (true, None) => Forwarded::To("unknown".into()),
            (false, Some(_)) => Forwarded::AlreadyAnswered,
            (false, None) => Forwarded::Unknown,
        })
    }

    /// The answers written for any of `ids`, each proven or refused, in
    /// the order they were written.
    pub async fn answers_for(&self, ids: &[String]) -> Result<Vec<(String, FoundAnswer)>, ClusterError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let prefix = self.answer_key("");
        let mut found: Vec<(String, FoundAnswer, i64)> = self
            .get_prefix_revisions(&prefix, 0)
            .await?
            .into_iter()
            .filter_map(|(key, value, revision)| {
                let rest = key.strip_prefix(&prefix)?;
                let id = rest.split_once('/').map_or(rest, |(id, _)| id).to_owned();
                ids.contains(&id).then(|| {
                    let found = self.check_answer(&id, &key, &value, revision);
                    (id, found, revision)
                })
            })
            .collect();
        found.sort_by_key(|(_, _, revision)| *revision);
        Ok(found.into_iter().map(|(id, found, _)| (id, found)).collect())
    }

    fn check_answer(&self, id: &str, key: &str, value: &[u8], revision: i64) -> FoundAnswer {
        let key = key.to_owned();
        match RemoteAnswer::read(&self.settings.secret, id, value) {
            Ok(answer) => FoundAnswer::Proven {
                answer,
                revision,
                key,
            },
            Err(reason) => FoundAnswer::Refused {
                reason,
                revision,
                key,
            },
        }
    }

    /// Removes the answer at `key` (as [`FoundAnswer`] names it) if it is
    /// still the one read at `revision` (an answer written since is left
    /// for the next read).
    pub async fn discard_answer(&self, key: &str, revision: i64) -> Result<(), ClusterError> {
        let key = key.to_owned();
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, revision)])
            .and_then([TxnOp::delete(key)]);
        self.txn(&txn).await.map(|_| ())
    }
}
