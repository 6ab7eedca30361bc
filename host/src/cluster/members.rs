//! Which replicas are up, and where: each replica registers its
//! `public_url` under `replicas/NAME` on a short lease it renews every few
//! seconds, so a replica that dies leaves the list within the lease.

use std::time::Duration;

use autoheal_core::util::unix_now;

use super::etcd::{Txn, TxnOp};
use super::{Cluster, ClusterError};

/// How long a replica stays listed after its last renewal.
pub const MEMBER_TTL_SEC: i64 = 10;
/// How often a replica renews it.
pub const RENEW_EVERY: Duration = Duration::from_secs(3);

pub use autoheal_api::cluster::Member;

impl Cluster {
    /// Lists this replica at `url` for `MEMBER_TTL_SEC`.
    pub async fn register(&self, url: &str) -> Result<(), ClusterError> {
        let lease = self.grant(MEMBER_TTL_SEC).await?;
        let member = Member {
            replica: self.replica().to_owned(),
            url: url.trim_end_matches('/').to_owned(),
            seen: unix_now(),
        };
        let put = Txn::new().and_then([TxnOp::put(
            self.key(&format!("replicas/{}", self.replica())),
            serde_json::to_vec(&member).expect("a member serializes"),
            Some(lease),
        )]);
        self.txn(&put).await.map(|_| ())
    }

    /// The replicas listed now, by name.
    pub async fn members(&self) -> Result<Vec<Member>, ClusterError> {
        let prefix = self.key("replicas/");
        Ok(self
            .get_prefix(&prefix)
            .await?
            .into_iter()
            .filter_map(|(_, value)| serde_json::from_slice(&value).ok())
            .collect())
    }
}
