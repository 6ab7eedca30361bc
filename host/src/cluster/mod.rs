//! Replicas on etcd: the claim that lets exactly one replica act on an
//! alert, the kill switch and dry-run every replica obeys, and whether the
//! cluster answers at all.
//!
//! **Claims.** Before an action is dispatched, its replica takes the claim
//! for the action's cooldown key (plugin, alertname, cooldown labels) in
//! one etcd transaction: create the key if absent, bound to a lease as long
//! as the cooldown (shared by the claims of a burst, see `claim_lease`).
//! The winner acts; a loser records `decision_skip` with `reason: claimed`
//! and the winner's name. The claim *is* the shared
//! cooldown: it is not kept alive, it runs out when the cooldown does, and
//! until then no replica can take it again. A replica that dies mid-action
//! does not hand its claim on: the claim lasts out its window whether the
//! action finished or not (the action's intent is in the dead replica's
//! trail), and the first webhook after the window is claimed afresh.
//!
//! Escalation steps and approved actions claim too, and the breaker's
//! history and pending approvals are shared (`restarts`, `approvals`), and
//! so are operators' pauses (`pauses`).
//!
//! **Switches.** The kill switch and dry-run live in one key. Every claim
//! transaction reads it, so an action claimed after an operator's flip on
//! any replica obeys the flip; a background tick copies it to the local
//! switches (and their file) once a second for `GET /` and the console.
//!
//! **Fail closed.** An etcd request that fails or outlasts `timeout` (etcd
//! down, no quorum, no leader) makes the cluster unavailable: no action
//! runs for real (it runs in dry-run, `dry_run_reason: cluster_unavailable`)
//! until a request succeeds again; the tick retries once a second.

mod approval_size;
mod approvals;
pub mod etcd;
mod follow;
mod held;
mod members;
mod pauses;
mod plugin_state;
pub mod proof;
mod repeats;
mod restarts;
mod sign_outs;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use autoheal_core::audit::AuditLog;
use autoheal_core::event::{EventBody, HostWarning, Warning};
use autoheal_core::util::unix_now;

use crate::config::ClusterSettings;
use crate::switches::SwitchState;
use etcd::{
    Compare, CompareOp, EtcdClient, EtcdError, EtcdOptions, RangeRequest, RangeResponse, Txn, TxnOp,
    TxnResponse,
};

pub use approvals::{
    AnswerPrincipal, Forwarded, FoundAnswer, MAX_PUBLISHED_APPROVALS, RemoteAnswer, SharedApproval,
};
pub use follow::{Follower, Shared};
pub use held::MAX_LISTED_CLAIMS;
pub use members::{MEMBER_TTL_SEC, Member};
pub use pauses::SharedPause;
pub use repeats::{CountedAction, Counting};

/// etcd's shortest lease is longer than this anyway; a claim of a zero
/// cooldown still holds a moment, long enough for the other replicas'
/// copies of the same webhook.
const MIN_CLAIM_TTL_SEC: i64 = 2;

/// How long a lease granted for claims serves further claims of the same length.
const LEASE_SHARED_FOR: Duration = Duration::from_secs(1);

/// Between two tries of a request that reached no etcd member.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Why the cluster could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The client could not be set up (TLS material, URLs).
    #[error("cannot set up the etcd client: {0}")]
    Setup(String),
    /// etcd answered with an error (no leader, no quorum, refused).
    #[error("etcd: {0}")]
    Etcd(#[from] EtcdError),
    /// etcd did not answer within `[cluster] timeout`.
    #[error("etcd did not answer within {0:?}")]
    Timeout(Duration),
    /// A value under autoheal's prefix that autoheal did not write.
    #[error("etcd key {key}: not autoheal's: {message}")]
    Foreign {
        /// The key.
        key: String,
        /// What the parser said.
        message: String,
    },
}

/// Who holds a claim, as stored in its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClaimRecord {
    replica: String,
    plugin: String,
    at: f64,
    until: f64,
}

/// What taking a claim found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This replica holds it now: act.
    Won,
    /// Another replica (named) holds it: do not act.
    Held {
        /// The holder's replica name.
        by: String,
    },
}

/// A claim's answer, and the cluster's switches read in the same transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// Won or held.
    pub claim: Claim,
    /// The shared switches, when set.
    pub switches: Option<SwitchState>,
}

/// The cluster's health as `GET /` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// This replica's name.
    pub replica: String,
    /// The etcd URLs.
    pub etcd: Vec<String>,
    /// Whether the last request to etcd succeeded.
    pub available: bool,
    /// Since when (unix seconds) it has been as it is.
    pub since: f64,
    /// The last failure, while unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug)]
struct Health {
    since: f64,
    error: Option<String>,
}

/// This replica's handle on the cluster.
pub struct Cluster {
    client: EtcdClient,
    settings: ClusterSettings,
    available: AtomicBool,
    health: Mutex<Health>,
    /// One flip or adoption of the switches at a time (see `follow`).
    switching: tokio::sync::Mutex<()>,
    /// A flip the cluster has not heard of yet.
    unshared: Mutex<Option<SwitchState>>,
    /// Where changes of availability are recorded (given once, at start).
    audit: OnceLock<Arc<AuditLog>>,
    /// The lease recent claims of each length share: (lease, granted at).
    claim_leases: Mutex<HashMap<i64, (i64, tokio::time::Instant)>>,
}

impl Cluster {
    /// A handle on the cluster of `settings`. Connections are made on first
    /// use: a replica starts (unavailable) while etcd is down.
    pub async fn connect(settings: ClusterSettings) -> Result<Self, ClusterError> {
        let client = EtcdClient::new(EtcdOptions {
            endpoints: settings.endpoints.clone(),
            // Each member gets its share of the timeout to answer a
            // connection, so that one that swallows packets leaves time to
            // try the others within one request.
            connect_timeout: (settings.timeout / settings.endpoints.len().max(1) as u32)
                .max(Duration::from_millis(50)),
            tls: settings.tls.clone(),
            user: settings.user.clone(),
        })
        .map_err(|e| ClusterError::Setup(e.to_string()))?;
        // A wrong user or password stops the start; a cluster that is down
        // does not (the replica starts unavailable and retries).
        match tokio::time::timeout(settings.timeout, client.authenticate()).await {
            Ok(Err(e)) if !e.unreached() => {
                return Err(ClusterError::Setup(format!("etcd refused the user: {e}")));
            }
            _ => {}
        }
        Ok(Self {
            client,
            settings,
            available: AtomicBool::new(true),
            health: Mutex::new(Health {
                since: unix_now(),
                error: None,
            }),
            switching: tokio::sync::Mutex::new(()),
            unshared: Mutex::new(None),
            audit: OnceLock::new(),
            claim_leases: Mutex::new(HashMap::new()),
        })
    }

    /// Records changes of the cluster's availability in `audit` from now on.
    pub fn record_to(&self, audit: Arc<AuditLog>) {
        let _ = self.audit.set(audit);
    }

    /// This replica's name.
    pub fn replica(&self) -> &str {
        &self.settings.replica
    }

    /// Whether the last request to etcd succeeded.
    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::SeqCst)
    }

    /// For `GET /`.
    pub fn status(&self) -> ClusterStatus {
        let health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        ClusterStatus {
            replica: self.settings.replica.clone(),
            etcd: self.settings.endpoints.clone(),
            available: self.is_available(),
            since: health.since,
            error: health.error.clone(),
        }
    }

    /// The [`proof::PEER_HEADER`] value for a request this replica sends to a peer.
    pub fn sign_peer_request(&self, method: &str, path_and_query: &str) -> String {
        self.settings
            .secret
            .sign_request(method, path_and_query, unix_now() as i64)
    }

    /// Whether `header` is another replica's signature of this request.
    pub fn verify_peer_request(&self, header: &str, method: &str, path_and_query: &str) -> bool {
        self.settings
            .secret
            .verify_request(header, method, path_and_query, unix_now() as i64)
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.settings.prefix)
    }

    /// The claim of the action whose cooldown key is `cooldown_key`. That
    /// key is unambiguous (label values are escaped, see
    /// `remediation::cooldown::key`) and claims have a directory of their own,
    /// so two actions never share a claim. Claims are read by exact key,
    /// never as a range: `p|A` being a prefix of `p|A|x=1` means nothing.
    fn claim_key(&self, cooldown_key: &str) -> String {
        self.key(&format!("claims/{cooldown_key}"))
    }

    fn switches_key(&self) -> String {
        self.key("switches")
    }

    /// Runs one request under the timeout and notes the cluster's health.
    /// A request that reached no member (one is down, the balancer chose it)
    /// is sent again, to another, until the timeout: it did nothing yet.
    async fn ask<'a, T, F, Fut>(&'a self, request: F) -> Result<T, ClusterError>
    where
        F: Fn(&'a EtcdClient) -> Fut,
        Fut: Future<Output = Result<T, EtcdError>>,
    {
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        let result = loop {
            match tokio::time::timeout_at(deadline, request(&self.client)).await {
                Ok(Ok(value)) => break Ok(value),
                Ok(Err(e)) if e.unreached() && tokio::time::Instant::now() + RETRY_PAUSE < deadline => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Ok(Err(e)) => break Err(ClusterError::Etcd(e)),
                Err(_) => break Err(ClusterError::Timeout(self.settings.timeout)),
            }
        };
        self.note(result.as_ref().err());
        result
    }

    /// The one key `key`, if it exists.
    async fn get(&self, key: &str) -> Result<Option<etcd::KeyValue>, ClusterError> {
        self.ask(|client| client.get(key)).await
    }

    async fn txn(&self, txn: &Txn) -> Result<TxnResponse, ClusterError> {
        self.ask(|client| client.txn(txn)).await
    }

    async fn range(&self, range: &RangeRequest) -> Result<RangeResponse, ClusterError> {
        self.ask(|client| client.range(range)).await
    }

    /// A lease of `ttl` seconds; its id.
    async fn grant(&self, ttl: i64) -> Result<i64, ClusterError> {
        self.ask(|client| client.lease_grant(ttl)).await
    }

    /// Availability from the last answer; a change is logged and recorded.
    fn note(&self, error: Option<&ClusterError>) {
        let was = self.available.swap(error.is_none(), Ordering::SeqCst);
        let (warning, detail) = {
            let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
            health.error = error.map(|e| e.to_string());
            match (was, error) {
                (true, Some(e)) => {
                    health.since = unix_now();
                    tracing::warn!(error = %e, "the cluster is unavailable: no action runs for real until it is back");
                    (
                        Warning::ClusterUnavailable,
                        format!("the cluster does not answer ({e}): no action runs for real until it does"),
                    )
                }
                (false, None) => {
                    health.since = unix_now();
                    tracing::info!("the cluster answers again: actions may run for real");
                    (
                        Warning::ClusterAvailable,
                        "the cluster answers again: actions may run for real".to_owned(),
                    )
                }
                _ => return,
            }
        };
        if let Some(audit) = self.audit.get() {
            audit.emit(EventBody::HostWarning(HostWarning {
                detail: Some(detail),
                ..HostWarning::bare(warning)
            }));
        }
    }

    /// A lease for a claim of `ttl` seconds. Claims of the same length taken
    /// within [`LEASE_SHARED_FOR`] of each other share one lease, granted
    /// that much longer: a burst of alerts (one webhook, or one Alertmanager
    /// group across the replicas) costs one lease grant, not one each, and
    /// each claim still lasts its cooldown (up to a second more).
    async fn claim_lease(&self, ttl: i64) -> Result<i64, ClusterError> {
        let now = tokio::time::Instant::now();
        let fresh =
            |(_, granted): &(i64, tokio::time::Instant)| now.duration_since(*granted) < LEASE_SHARED_FOR;
        if let Some((lease, _)) = self
            .claim_leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ttl)
            .filter(|entry| fresh(entry))
        {
            return Ok(*lease);
        }
        let lease = self.grant(ttl + LEASE_SHARED_FOR.as_secs() as i64).await?;
        let mut leases = self.claim_leases.lock().unwrap_or_else(|p| p.into_inner());
        leases.retain(|_, entry| fresh(entry));
        leases.insert(ttl, (lease, now));
        Ok(lease)
    }

    /// Takes the claim for `cooldown_key` for `ttl_sec` seconds on behalf of
    /// `plugin`, and reads the shared switches in the same transaction.
    pub async fn claim(
        &self,
        cooldown_key: &str,
        plugin: &str,
        ttl_sec: u64,
    ) -> Result<Claimed, ClusterError> {
        self.claim_counting(cooldown_key, plugin, ttl_sec, None).await
    }

    /// [`Cluster::claim`], and when it is won and `counting` is given, the
    /// action's record for the repeat caps (`repeats`) in the same
    /// transaction (or right after it, when this replica held the claim
    /// already): counted if and only if this replica acts.
    pub async fn claim_counting(
        &self,
        cooldown_key: &str,
        plugin: &str,
        ttl_sec: u64,
        counting: Option<Counting>,
    ) -> Result<Claimed, ClusterError> {
        let ttl = (ttl_sec.min(i64::MAX as u64) as i64).max(MIN_CLAIM_TTL_SEC);
        let lease = self.claim_lease(ttl).await?;
        let count = match counting {
            Some(counting) => Some(self.count_op(cooldown_key, plugin, counting).await?),
            None => None,
        };
        let key = self.claim_key(cooldown_key);
        let now = unix_now();
        let record = ClaimRecord {
            replica: self.settings.replica.clone(),
            plugin: plugin.to_owned(),
            at: now,
            until: now + ttl as f64,
        };
        let value = serde_json::to_vec(&record).expect("a claim serializes");
        let switches = self.switches_key();
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then(
                [
                    TxnOp::put(key.clone(), value, Some(lease)),
                    TxnOp::get(switches.clone()),
                ]
                .into_iter()
                .chain(count.clone()),
            )
            .or_else([TxnOp::get(key.clone()), TxnOp::get(switches.clone())]);
        let response = match self.txn(&txn).await {
            Ok(response) => response,
            Err(e) => {
                // The lease may be what failed (etcd lost it): the next claim grants another.
                self.claim_leases
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                return Err(e);
            }
        };
        let gets: Vec<_> = response.gets().collect();
        let value_of = |i: usize| gets.get(i).and_then(|g| g.kvs.first()).map(|kv| kv.value.clone());
        let (claim, switches_at) = if response.succeeded {
            (Claim::Won, 0)
        } else {
            let holder = match value_of(0) {
                Some(bytes) => {
                    let record: ClaimRecord =
                        serde_json::from_slice(&bytes).map_err(|e| ClusterError::Foreign {
                            key: key.clone(),
                            message: e.to_string(),
                        })?;
                    record.replica
                }
                // Gone between the compare and the read: cannot happen
                // inside one transaction, but never act on a guess.
                None => "unknown".into(),
            };
            (Claim::Held { by: holder }, 1)
        };
        // Held by this replica already (it acts again within its own claim,
        // as with a cooldown shorter than a claim's shortest lease): its
        // action counts all the same. No other replica can act on the key
        // meanwhile, so the record needs no condition.
        if let (Claim::Held { by }, Some(count)) = (&claim, count)
            && by == &self.settings.replica
        {
            self.txn(&Txn::new().and_then([count])).await?;
        }
        let switches = value_of(switches_at)
            .map(|bytes| parse_switches(&switches, &bytes))
            .transpose()?;
        Ok(Claimed { claim, switches })
    }

    /// Gives back a claim this replica took for an action that did not
    /// start after all (its decision could not be recorded), so that the
    /// retry is decided afresh. Only this replica's own claim is removed.
    pub async fn release(&self, cooldown_key: &str) {
        let key = self.claim_key(cooldown_key);
        let Ok(Some(kv)) = self.get(&key).await else {
            return;
        };
        let ours = serde_json::from_slice::<ClaimRecord>(&kv.value)
            .is_ok_and(|record| record.replica == self.settings.replica);
        if !ours {
            return;
        }
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                kv.mod_revision,
            )])
            .and_then([TxnOp::delete(key)]);
        let _ = self.txn(&txn).await;
    }

    /// The shared switches (`None` before any replica wrote them).
    pub async fn switches(&self) -> Result<Option<SwitchState>, ClusterError> {
        let key = self.switches_key();
        self.get(&key)
            .await?
            .map(|kv| parse_switches(&key, &kv.value))
            .transpose()
    }

    /// Sets the shared switches: every replica's next claim obeys them.
    pub async fn set_switches(&self, state: SwitchState) -> Result<(), ClusterError> {
        let (key, value) = (
            self.switches_key(),
            serde_json::to_vec(&state).expect("two booleans serialize"),
        );
        self.ask(|client| client.put(key.clone(), value.clone())).await
    }

    /// Writes `state` as the shared switches unless a replica already has;
    /// returns the switches the cluster has now.
    pub async fn seed_switches(&self, state: SwitchState) -> Result<SwitchState, ClusterError> {
        let key = self.switches_key();
        let value = serde_json::to_vec(&state).expect("two booleans serialize");
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), value, None)])
            .or_else([TxnOp::get(key.clone())]);
        let response = self.txn(&txn).await?;
        if response.succeeded {
            return Ok(state);
        }
        let stored = response.gets().find_map(|get| get.kvs.first());
        match stored {
            Some(kv) => parse_switches(&key, &kv.value),
            None => Ok(state),
        }
    }
}

fn parse_switches(key: &str, bytes: &[u8]) -> Result<SwitchState, ClusterError> {
    serde_json::from_slice(bytes).map_err(|e| ClusterError::Foreign {
        key: key.to_owned(),
        message: e.to_string(),
    })
}
