//! The restart circuit breaker's history, shared by the replicas: one etcd
//! key per container (engine-qualified) holding the times of its real
//! restarts in the window, updated by compare-and-swap so that two replicas
//! restarting one container at once cannot both take its last place. The
//! key lives on a lease as long as the window, renewed by each restart, so
//! a container left alone leaves no key behind. A restart within the
//! target cooldown of the latest one, by any replica, joins it instead.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use autoheal_sandbox::breaker::{Joining, SharedHistory, SharedRefusal};

use super::Cluster;
use super::etcd::{Compare, CompareOp, Txn, TxnOp};

/// Compare-and-swap rounds before the history counts as unavailable
/// (each lost round means another replica restarted the container).
const ROUNDS: usize = 8;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Restarts {
    /// Unix times, oldest first.
    at: Vec<f64>,
    /// The fingerprint of the alert the latest was for (absent in keys
    /// written before restarts were joined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    latest_alert: Option<String>,
}

#[async_trait::async_trait]
impl SharedHistory for Cluster {
    async fn record(
        &self,
        container: &str,
        now: f64,
        max: u32,
        window: Duration,
        joining: &Joining,
    ) -> Result<(), SharedRefusal> {
        let unavailable = |e: super::ClusterError| SharedRefusal::Unavailable(e.to_string());
        let key = self.key(&format!("restarts/{container}"));
        let horizon = now - window.as_secs_f64();
        for _ in 0..ROUNDS {
            let current = self.get(&key).await.map_err(unavailable)?;
            let (mut restarts, revision) = match current {
                Some(kv) => (
                    serde_json::from_slice::<Restarts>(&kv.value).unwrap_or_default(),
                    kv.mod_revision,
                ),
                None => (Restarts::default(), 0),
            };
            restarts.at.retain(|t| *t > horizon);
            // Another replica restarted it just now, for another alert of
            // the same fault: join that restart.
            if let Some(latest) = restarts.at.last().copied()
                && restarts.latest_alert.as_deref() != Some(joining.alert.as_str())
                && now - latest < joining.within.as_secs_f64()
            {
                return Err(SharedRefusal::Joined {
                    age_sec: (now - latest).max(0.0),
                });
            }
            if restarts.at.len() >= max as usize {
                let oldest = restarts.at.first().copied().unwrap_or(now);
                return Err(SharedRefusal::Open {
                    restarts: restarts.at.len(),
                    closes_in_sec: (oldest + window.as_secs_f64() - now).max(0.0),
                });
            }
            restarts.at.push(now);
            restarts.latest_alert = Some(joining.alert.clone());
            let ttl = (window.as_secs() as i64).max(super::MIN_CLAIM_TTL_SEC);
            let lease = self.grant(ttl).await.map_err(unavailable)?;
            let value = serde_json::to_vec(&restarts).expect("times serialize");
            let unchanged = match revision {
                0 => Compare::create_revision(key.clone(), CompareOp::Equal, 0),
                revision => Compare::mod_revision(key.clone(), CompareOp::Equal, revision),
            };
            let txn = Txn::new()
                .when([unchanged])
                .and_then([TxnOp::put(key.clone(), value, Some(lease))]);
            if self.txn(&txn).await.map_err(unavailable)?.succeeded {
                return Ok(());
            }
            // The unused lease would run out anyway: revoking it is a courtesy
            // to etcd, bounded like every request.
            let _ = tokio::time::timeout(self.settings.timeout, self.client.lease_revoke(lease)).await;
        }
        Err(SharedRefusal::Unavailable(format!(
            "{container}'s restart history kept changing under {ROUNDS} attempts"
        )))
    }

    async fn recent(&self, now: f64, window: Duration) -> Result<Vec<(String, Vec<f64>)>, String> {
        let prefix = self.key("restarts/");
        let horizon = now - window.as_secs_f64();
        let keys = self.get_prefix(&prefix).await.map_err(|e| e.to_string())?;
        Ok(keys
            .into_iter()
            .filter_map(|(key, value)| {
                let container = key.strip_prefix(&prefix)?.to_owned();
                let mut restarts = serde_json::from_slice::<Restarts>(&value).ok()?;
                restarts.at.retain(|t| *t > horizon);
                Some((container, restarts.at))
            })
            .collect())
    }
}
