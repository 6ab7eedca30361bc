//! Pauses every replica obeys: the replica an operator paused on writes
//! the pause under `pauses/ID`, leased until a little past its end, so
//! that etcd forgets it by itself; each replica lists them once a second
//! and follows them (`remediation::shared_pauses`). A resume rewrites the
//! key as resumed (same end, same lease length) instead of deleting it, so
//! that the others learn who resumed, and a replica that missed the pause
//! does not take it up again.
//!
//! A pause only ever stops actions, as the kill switch in `switches` does;
//! like the switches, it is taken from etcd without a proof.

use serde::{Deserialize, Serialize};

use autoheal_api::pauses::Pause;
use autoheal_core::util::unix_now;

use super::etcd::{Compare, CompareOp, Txn, TxnOp};
use super::{Cluster, ClusterError};

/// Pauses one list reads; more at once would be a mistake, not a plan.
pub const MAX_LISTED_PAUSES: i64 = 256;

/// A pause as the replicas share it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedPause {
    /// The pause (`replica`: the replica it was made on).
    pub pause: Pause,
    /// Ended by an operator on some replica.
    #[serde(default)]
    pub resumed: bool,
    /// Who resumed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_by: Option<String>,
}

impl Cluster {
    fn pause_key(&self, id: &str) -> String {
        self.key(&format!("pauses/{id}"))
    }

    /// A lease that outlives a pause ending at `until` by a few seconds: the
    /// replicas end it themselves at `until`; etcd only cleans up.
    async fn pause_lease(&self, until: f64) -> Result<i64, ClusterError> {
        let ttl = ((until - unix_now()).ceil() as i64 + 5).max(super::MIN_CLAIM_TTL_SEC);
        self.grant(ttl).await
    }

    /// Every shared pause (at most `MAX_LISTED_PAUSES`), resumed ones included.
    pub async fn shared_pauses(&self) -> Result<Vec<SharedPause>, ClusterError> {
        Ok(self
            .entries::<SharedPause>(&self.pause_key(""), MAX_LISTED_PAUSES)
            .await?
            .into_iter()
            .filter(|(id, shared)| *id == shared.pause.id)
            .map(|(_, shared)| shared)
            .collect())
    }

    /// Shares `pause` unless the cluster already has it (as it is, or resumed).
    pub async fn publish_pause(&self, pause: &Pause) -> Result<(), ClusterError> {
        let key = self.pause_key(&pause.id);
        let lease = self.pause_lease(pause.until).await?;
        let shared = SharedPause {
            pause: pause.clone(),
            resumed: false,
            resumed_by: None,
        };
        let value = serde_json::to_vec(&shared).expect("a pause serializes");
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, Some(lease))]);
        self.txn(&txn).await.map(|_| ())
    }

    /// Marks `pause` resumed by `by` for every replica.
    pub async fn resume_shared_pause(&self, pause: &Pause, by: Option<String>) -> Result<(), ClusterError> {
        let lease = self.pause_lease(pause.until).await?;
        let shared = SharedPause {
            pause: pause.clone(),
            resumed: true,
            resumed_by: by,
        };
        let value = serde_json::to_vec(&shared).expect("a pause serializes");
        let put = Txn::new().and_then([TxnOp::put(self.pause_key(&pause.id), value, Some(lease))]);
        self.txn(&put).await.map(|_| ())
    }
}
