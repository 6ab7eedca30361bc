//! Plugins' state shared by the replicas: each key of each plugin is an
//! etcd key, `state/<plugin>/<key>`, holding its value and expiry, leased
//! until a second past it so that etcd forgets it by itself. Any replica
//! reads what another set. The key count is checked against the listing
//! before a new key is put (two replicas setting new keys at the same
//! instant may pass `max_keys` by one each: bounded, not exact).

use autoheal_sandbox::capability::StateEntry;
use autoheal_sandbox::manifest::MAX_STATE_KEY;

use super::etcd::{Txn, TxnOp};
use super::{Cluster, ClusterError};

/// Keys one listing reads: more than any manifest may hold.
const MAX_LISTED_KEYS: i64 = 1025;

impl Cluster {
    fn state_key(&self, plugin: &str, key: &str) -> String {
        debug_assert!(key.len() <= MAX_STATE_KEY);
        self.key(&format!("state/{plugin}/{key}"))
    }

    /// `plugin`'s keys, as etcd holds them (expired ones may linger until
    /// their lease ends: the caller filters).
    pub async fn state_entries(&self, plugin: &str) -> Result<Vec<(String, StateEntry)>, ClusterError> {
        self.entries(&self.state_key(plugin, ""), MAX_LISTED_KEYS).await
    }

    /// `plugin`'s `key`, if etcd holds it.
    pub async fn state_entry(&self, plugin: &str, key: &str) -> Result<Option<StateEntry>, ClusterError> {
        Ok(self
            .get(&self.state_key(plugin, key))
            .await?
            .and_then(|kv| serde_json::from_slice(&kv.value).ok()))
    }

    /// Puts `plugin`'s `key`, leased until a second past `entry.expires`.
    pub async fn put_state(&self, plugin: &str, key: &str, entry: &StateEntry) -> Result<(), ClusterError> {
        let now = autoheal_sandbox::capability::state_now();
        let ttl = (entry.expires.saturating_sub(now) as i64)
            .saturating_add(1)
            .max(2);
        let lease = self.grant(ttl).await?;
        let value = serde_json::to_vec(entry).expect("a state entry serializes");
        let put = Txn::new().and_then([TxnOp::put(self.state_key(plugin, key), value, Some(lease))]);
        self.txn(&put).await.map(|_| ())
    }

    /// Removes `plugin`'s `key`.
    pub async fn delete_state(&self, plugin: &str, key: &str) -> Result<(), ClusterError> {
        let delete = Txn::new().and_then([TxnOp::delete(self.state_key(plugin, key))]);
        self.txn(&delete).await.map(|_| ())
    }
}
