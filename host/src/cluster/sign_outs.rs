//! Sign-outs every replica honours. Sessions are sealed under a key derived
//! from the cluster secret, so a console session works on every replica;
//! its sign-out must too. The replica a person signs out on writes the
//! session's id under `signed-out/SID`, leased until a little past the
//! session's own expiry (etcd forgets it when it no longer matters); each
//! replica lists them once a second and refuses those sessions from then
//! on.
//!
//! Taken from etcd without a proof: an entry can only end a session, never
//! start one, so the worst an etcd writer can do with it is sign people out.

use autoheal_core::util::unix_now;

use super::etcd::{Txn, TxnOp};
use super::{Cluster, ClusterError};

/// Sign-outs one list reads: more unexpired sign-outs at once than this
/// are not a plan; those past it are honoured by the replica they were on.
pub const MAX_LISTED_SIGN_OUTS: i64 = 4096;

impl Cluster {
    fn sign_out_key(&self, sid: &str) -> String {
        self.key(&format!("signed-out/{sid}"))
    }

    /// Shares that the session `sid`, valid until `expires_at` (Unix
    /// seconds), was signed out.
    pub async fn share_sign_out(&self, sid: &str, expires_at: i64) -> Result<(), ClusterError> {
        let ttl = (expires_at - unix_now().floor() as i64 + 5).max(super::MIN_CLAIM_TTL_SEC);
        let lease = self.grant(ttl).await?;
        let value = serde_json::to_vec(&expires_at).expect("an integer serializes");
        let put = Txn::new().and_then([TxnOp::put(self.sign_out_key(sid), value, Some(lease))]);
        self.txn(&put).await.map(|_| ())
    }

    /// The sessions signed out on any replica and not yet expired: (id, expiry).
    pub async fn sign_outs(&self) -> Result<Vec<(String, i64)>, ClusterError> {
        self.entries::<i64>(&self.sign_out_key(""), MAX_LISTED_SIGN_OUTS)
            .await
    }
}
