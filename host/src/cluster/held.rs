//! Which replica holds which claim now, for `GET /` and `autoheal status`:
//! the claims under `claims/`, read as a range. Deciding never reads them
//! this way (a claim is taken or read by its exact key, see `claim_key`);
//! this listing only shows people who acted, or acts, on what.

use autoheal_api::status::HeldClaim;

use super::{ClaimRecord, Cluster, ClusterError};

/// At most this many claims are listed: a storm may hold thousands, and
/// `GET /` must stay small and quick.
pub const MAX_LISTED_CLAIMS: i64 = 100;

impl Cluster {
    /// The claims held now (at most [`MAX_LISTED_CLAIMS`] of them), the
    /// soonest to run out first. A value that is not a claim record (written
    /// by something else) is left out.
    pub async fn held_claims(&self) -> Result<Vec<HeldClaim>, ClusterError> {
        let mut claims: Vec<HeldClaim> = self
            .entries::<ClaimRecord>(&self.claim_key(""), MAX_LISTED_CLAIMS)
            .await?
            .into_iter()
            .map(|(key, record)| HeldClaim {
                key,
                replica: record.replica,
                plugin: record.plugin,
                at: record.at,
                until: record.until,
            })
            .collect();
        claims.sort_by(|a, b| a.until.total_cmp(&b.until).then_with(|| a.key.cmp(&b.key)));
        Ok(claims)
    }
}
