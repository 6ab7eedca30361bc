//! Repeat caps across replicas: each real action a cap counts is written
//! under `PREFIX/repeats/<cooldown key>/<time>-<replica>`, in the same
//! transaction as the action's claim (see [`Cluster::claim_counting`]), on a
//! lease as long as the plugin's longest cap window, so that etcd forgets it
//! when no cap can count it any more. Every replica reads the prefix once a
//! second (the remediator's tick) and counts what the others started.
//!
//! The per-key count holds exactly: one key's actions are serialized by its
//! claim, which lasts longer than a replica takes to read the others'
//! records. A plugin's count over all its keys can be passed by one action
//! per replica when replicas act on different keys in the same second.

use serde::{Deserialize, Serialize};

use super::etcd::{Txn, TxnOp};
use super::{Cluster, ClusterError};

/// A real action counted by a repeat cap, as stored in etcd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountedAction {
    /// The plugin that acted.
    pub plugin: String,
    /// The cooldown key it acted under.
    pub cooldown_key: String,
    /// When it started (unix seconds).
    pub at: f64,
    /// The replica that acted.
    pub replica: String,
}

/// What a claim writes when its action counts toward a repeat cap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counting {
    /// When the action was counted (unix seconds).
    pub at: f64,
    /// How long etcd keeps the record: the plugin's longest cap window.
    pub keep_sec: u64,
}

impl Cluster {
    fn repeat_key(&self, cooldown_key: &str, at: f64) -> String {
        self.key(&format!(
            "repeats/{cooldown_key}/{at:.6}-{}",
            self.settings.replica
        ))
    }

    /// The put of a counted action, for the claim's transaction.
    pub(super) async fn count_op(
        &self,
        cooldown_key: &str,
        plugin: &str,
        counting: Counting,
    ) -> Result<TxnOp, ClusterError> {
        let keep = (counting.keep_sec.min(i64::MAX as u64) as i64).max(super::MIN_CLAIM_TTL_SEC);
        let lease = self.claim_lease(keep).await?;
        let record = CountedAction {
            plugin: plugin.to_owned(),
            cooldown_key: cooldown_key.to_owned(),
            at: counting.at,
            replica: self.settings.replica.clone(),
        };
        let value = serde_json::to_vec(&record).expect("a counted action serializes");
        Ok(TxnOp::put(
            self.repeat_key(cooldown_key, counting.at),
            value,
            Some(lease),
        ))
    }

    /// Takes a counted action out again: its plugin declined, or it ran in
    /// dry-run after all. Best effort: a record left behind only counts
    /// one action too many until its lease ends.
    pub async fn uncount(&self, cooldown_key: &str, at: f64) {
        let txn = Txn::new().and_then([TxnOp::delete(self.repeat_key(cooldown_key, at))]);
        let _ = self.txn(&txn).await;
    }

    /// The actions other replicas counted, as etcd has them now. A value
    /// that is not autoheal's is left out (it cannot stop an action).
    pub async fn counted_by_others(&self) -> Result<Vec<CountedAction>, ClusterError> {
        let prefix = self.key("repeats/");
        Ok(self
            .get_prefix(&prefix)
            .await?
            .into_iter()
            .filter_map(|(_, value)| serde_json::from_slice::<CountedAction>(&value).ok())
            .filter(|counted| counted.replica != self.settings.replica)
            .collect())
    }
}
