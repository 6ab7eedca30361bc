//! The `state` capability (`wit/state.wit`; its manifest section is
//! `autoheal_manifest::StateGrant`): a small key-value store of the
//! plugin's own, kept across invocations by the host's [`StateStore`].
//!
//! | call | allowed by | kind |
//! |---|---|---|
//! | `get` | `[capabilities.state]` | read |
//! | `set` | `[capabilities.state]`; key, value, TTL and key count within its bounds | effect: not kept in dry-run |
//! | `delete` | `[capabilities.state]` | effect: not kept in dry-run |
//!
//! Writes are effects for dry-run only: they touch nothing outside the
//! host, so no intent is written and no breaker counts them (the call's
//! record in the action event is their trail).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use autoheal_manifest::{MAX_STATE_KEY, StateGrant, is_state_key};
use serde::{Deserialize, Serialize};

use crate::capability::{CallOutcome, Capability, CapabilityGate, ExecutionMode, GateError, cut};

/// Whole unix seconds: what expiries are counted in.
pub fn now() -> u64 {
    autoheal_core::util::unix_now() as u64
}

/// One key's value and when it expires (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEntry {
    /// What the plugin set.
    pub value: String,
    /// Unix seconds after which the key is gone.
    pub expires: u64,
}

/// One plugin's keys; expired keys are dropped by every read and write.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StateMap(pub BTreeMap<String, StateEntry>);

/// Why a store could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A new key past the manifest's `max_keys`.
    #[error("the plugin's state holds {0} keys, its manifest's max_keys; delete one or let one expire first")]
    Full(usize),
    /// The store could not be read or written.
    #[error("{0}")]
    Failed(String),
}

impl StateMap {
    /// Drops the keys expired at `now`; whether any were.
    pub fn drop_expired(&mut self, now: u64) -> bool {
        let before = self.0.len();
        self.0.retain(|_, entry| entry.expires > now);
        self.0.len() != before
    }

    /// The value of `key` at `now`.
    pub fn get(&self, key: &str, now: u64) -> Option<&str> {
        self.0
            .get(key)
            .filter(|entry| entry.expires > now)
            .map(|entry| entry.value.as_str())
    }

    /// Sets `key` until `expires`; a new key past `max_keys` (live keys at
    /// `now`) is refused.
    pub fn set(
        &mut self,
        key: &str,
        value: &str,
        expires: u64,
        max_keys: usize,
        now: u64,
    ) -> Result<(), StoreError> {
        self.drop_expired(now);
        if !self.0.contains_key(key) && self.0.len() >= max_keys {
            return Err(StoreError::Full(max_keys));
        }
        self.0.insert(
            key.to_owned(),
            StateEntry {
                value: value.to_owned(),
                expires,
            },
        );
        Ok(())
    }

    /// Removes `key`; whether it was set (and live at `now`).
    pub fn delete(&mut self, key: &str, now: u64) -> bool {
        self.0.remove(key).is_some_and(|entry| entry.expires > now)
    }
}

/// Where plugins' state is kept, shared by all invocations (the host's:
/// a file per plugin beside the audit trail).
#[async_trait::async_trait]
pub trait StateStore: Send + Sync {
    /// The value of `plugin`'s `key`, if set and not expired.
    async fn get(&self, plugin: &str, key: &str) -> Result<Option<String>, StoreError>;
    /// Sets `plugin`'s `key` until `expires` (unix seconds), kept before it answers.
    async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: &str,
        expires: u64,
        max_keys: usize,
    ) -> Result<(), StoreError>;
    /// Removes `plugin`'s `key`, kept before it answers; whether it was set.
    async fn delete(&self, plugin: &str, key: &str) -> Result<bool, StoreError>;
    /// Every live key of `plugin` (`plugin test`'s end state).
    async fn entries(&self, plugin: &str) -> Result<StateMap, StoreError>;

    /// A trial's own copy, which keeps dry-run writes (they reach nothing
    /// but the trial, which shows the state they leave); never the host's.
    fn keeps_dry_run_writes(&self) -> bool {
        false
    }
}

/// State in memory, gone with the process: tests, and `plugin test`
/// (which may start it from a file).
#[derive(Default)]
pub struct MemoryStateStore {
    plugins: Mutex<BTreeMap<String, StateMap>>,
    scratch: bool,
}

impl MemoryStateStore {
    /// A store holding `state` for `plugin`.
    pub fn with(plugin: &str, state: StateMap) -> Self {
        Self {
            plugins: Mutex::new(BTreeMap::from([(plugin.to_owned(), state)])),
            scratch: false,
        }
    }

    /// A trial's copy of `plugin`'s `state`: dry-run writes are kept in it
    /// (and recorded as dry-run writes), so the trial can show the state
    /// they would leave.
    pub fn scratch(plugin: &str, state: StateMap) -> Self {
        Self {
            scratch: true,
            ..Self::with(plugin, state)
        }
    }
}

#[async_trait::async_trait]
impl StateStore for MemoryStateStore {
    async fn get(&self, plugin: &str, key: &str) -> Result<Option<String>, StoreError> {
        let plugins = self.plugins.lock().expect("state lock");
        Ok(plugins
            .get(plugin)
            .and_then(|m| m.get(key, now()))
            .map(str::to_owned))
    }

    async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: &str,
        expires: u64,
        max_keys: usize,
    ) -> Result<(), StoreError> {
        let mut plugins = self.plugins.lock().expect("state lock");
        plugins
            .entry(plugin.to_owned())
            .or_default()
            .set(key, value, expires, max_keys, now())
    }

    async fn delete(&self, plugin: &str, key: &str) -> Result<bool, StoreError> {
        let mut plugins = self.plugins.lock().expect("state lock");
        Ok(plugins.get_mut(plugin).is_some_and(|m| m.delete(key, now())))
    }

    async fn entries(&self, plugin: &str) -> Result<StateMap, StoreError> {
        let plugins = self.plugins.lock().expect("state lock");
        let mut map = plugins.get(plugin).cloned().unwrap_or_default();
        map.drop_expired(now());
        Ok(map)
    }

    fn keeps_dry_run_writes(&self) -> bool {
        self.scratch
    }
}

impl CapabilityGate {
    /// `state.get`, if the manifest has `[capabilities.state]`.
    pub async fn state_get(&mut self, key: String) -> Result<Option<String>, GateError> {
        const CAPABILITY: Capability = Capability::StateGet;
        self.state_bounds(CAPABILITY, &key)?;
        let result = self.services.state.get(&self.plugin, &key).await;
        match result {
            Ok(value) => {
                let said = match &value {
                    Some(v) => format!("{} bytes", v.len()),
                    None => "unset".to_owned(),
                };
                self.record(CAPABILITY, key, CallOutcome::Ok, Some(said));
                Ok(value)
            }
            Err(e) => Err(self.store_failed(CAPABILITY, key, e)),
        }
    }

    /// `state.set`, within the manifest's bounds; recorded, not kept, in dry-run.
    pub async fn state_set(&mut self, key: String, value: String, ttl: Option<u64>) -> Result<(), GateError> {
        const CAPABILITY: Capability = Capability::StateSet;
        let bounds = self.state_bounds(CAPABILITY, &key)?;
        if value.len() > bounds.max_value_bytes {
            let why = format!(
                "a value of {} bytes is longer than the manifest's max_value_bytes ({})",
                value.len(),
                bounds.max_value_bytes
            );
            return Err(self.deny(CAPABILITY, key, why));
        }
        let max_ttl = bounds.max_ttl.as_secs();
        let ttl = ttl.unwrap_or(max_ttl);
        if ttl == 0 || ttl > max_ttl {
            let why = format!("a TTL of {ttl} s: it must be 1 s to the manifest's max_ttl ({max_ttl} s)");
            return Err(self.deny(CAPABILITY, key, why));
        }
        let detail = format!(
            "{} bytes for {}",
            value.len(),
            humantime::format_duration(Duration::from_secs(ttl))
        );
        let dry_run = self.mode == ExecutionMode::DryRun;
        if dry_run && !self.services.state.keeps_dry_run_writes() {
            self.record(CAPABILITY, key, CallOutcome::Recorded, Some(detail));
            return Ok(());
        }
        let outcome = if dry_run {
            CallOutcome::Recorded
        } else {
            CallOutcome::Ok
        };
        let expires = now().saturating_add(ttl);
        match self
            .services
            .state
            .set(&self.plugin, &key, &value, expires, bounds.max_keys)
            .await
        {
            Ok(()) => {
                self.record(CAPABILITY, key, outcome, Some(detail));
                Ok(())
            }
            Err(full @ StoreError::Full(_)) => Err(self.deny(CAPABILITY, key, full.to_string())),
            Err(e) => Err(self.store_failed(CAPABILITY, key, e)),
        }
    }

    /// `state.delete`; in dry-run recorded, not kept (it answers whether the
    /// key is set).
    pub async fn state_delete(&mut self, key: String) -> Result<bool, GateError> {
        const CAPABILITY: Capability = Capability::StateDelete;
        self.state_bounds(CAPABILITY, &key)?;
        let result = if self.mode == ExecutionMode::DryRun && !self.services.state.keeps_dry_run_writes() {
            self.services
                .state
                .get(&self.plugin, &key)
                .await
                .map(|v| v.is_some())
        } else {
            self.services.state.delete(&self.plugin, &key).await
        };
        match result {
            Ok(was_set) => {
                let outcome = match self.mode {
                    ExecutionMode::DryRun => CallOutcome::Recorded,
                    _ => CallOutcome::Ok,
                };
                let said = if was_set { "was set" } else { "was not set" };
                self.record(CAPABILITY, key, outcome, Some(said.into()));
                Ok(was_set)
            }
            Err(e) => Err(self.store_failed(CAPABILITY, key, e)),
        }
    }

    /// The manifest's bounds, if it has `[capabilities.state]` and `key`
    /// is a state key.
    fn state_bounds(&mut self, capability: Capability, key: &str) -> Result<StateGrant, GateError> {
        self.begin()?;
        let Some(bounds) = self.state_grant else {
            return Err(self.deny(
                capability,
                cut(key.to_owned(), MAX_STATE_KEY),
                "the manifest has no [capabilities.state]".into(),
            ));
        };
        if !is_state_key(key) {
            return Err(self.deny(
                capability,
                cut(key.to_owned(), MAX_STATE_KEY),
                format!("a state key is 1 to {MAX_STATE_KEY} characters of [A-Za-z0-9_.:-]"),
            ));
        }
        Ok(bounds)
    }

    fn store_failed(&mut self, capability: Capability, key: String, e: StoreError) -> GateError {
        let reason = e.to_string();
        self.record(capability, key, CallOutcome::Failed, Some(reason.clone()));
        GateError::Runtime(reason)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    use crate::capability::{Breakers, HostServices, NoIntentLog};
    use autoheal_containers::FakeRuntime;

    fn gate(grant: Option<StateGrant>, store: Arc<MemoryStateStore>, mode: ExecutionMode) -> CapabilityGate {
        let services = HostServices {
            state: store,
            ..HostServices::offline(
                Arc::new(FakeRuntime::new()),
                Breakers::with_limit(1),
                Arc::new(NoIntentLog),
            )
        };
        CapabilityGate::without_containers(mode, services).with_grants(None, grant)
    }

    fn small() -> StateGrant {
        StateGrant {
            max_keys: 2,
            max_value_bytes: 8,
            max_ttl: Duration::from_secs(60),
        }
    }

    #[test]
    fn expired_keys_are_gone_and_free_their_place() {
        let mut map = StateMap::default();
        map.set("a", "1", 100, 2, 0).unwrap();
        map.set("b", "2", 200, 2, 0).unwrap();
        assert_eq!(map.set("c", "3", 300, 2, 50), Err(StoreError::Full(2)));
        // Setting a key already there is not a new key.
        map.set("a", "9", 150, 2, 50).unwrap();
        assert_eq!(map.get("a", 149), Some("9"));
        assert_eq!(map.get("a", 150), None);
        map.set("c", "3", 300, 2, 150).unwrap();
        assert!(!map.0.contains_key("a"), "expired when a place was needed");
        assert!(!map.delete("b", 250), "expired: was not set");
        assert!(!map.drop_expired(250));
        assert!(map.drop_expired(300), "c expires at 300");
        assert!(map.0.is_empty());
    }

    #[tokio::test]
    async fn set_then_get_and_delete_for_real() {
        let store = Arc::new(MemoryStateStore::default());
        let mut gate = gate(Some(small()), store.clone(), ExecutionMode::Real);
        gate.state_set("count".into(), "1".into(), None).await.unwrap();
        assert_eq!(
            gate.state_get("count".into()).await.unwrap().as_deref(),
            Some("1")
        );
        assert!(gate.state_delete("count".into()).await.unwrap());
        assert!(!gate.state_delete("count".into()).await.unwrap());
        assert_eq!(gate.state_get("count".into()).await.unwrap(), None);
        let outcomes: Vec<_> = gate.calls().iter().map(|c| (c.capability, c.outcome)).collect();
        assert_eq!(outcomes[0], (Capability::StateSet, CallOutcome::Ok));
        assert_eq!(gate.calls()[0].detail.as_deref(), Some("1 bytes for 1m"));
        assert!(store.entries("p").await.unwrap().0.is_empty());
    }

    #[tokio::test]
    async fn dry_run_records_writes_and_keeps_nothing() {
        let store = Arc::new(MemoryStateStore::with(
            "p",
            StateMap(BTreeMap::from([(
                "kept".to_owned(),
                StateEntry {
                    value: "v".into(),
                    expires: u64::MAX,
                },
            )])),
        ));
        let mut gate = gate(Some(small()), store.clone(), ExecutionMode::DryRun);
        gate.state_set("new".into(), "1".into(), Some(5)).await.unwrap();
        assert!(gate.state_delete("kept".into()).await.unwrap());
        assert_eq!(gate.state_get("new".into()).await.unwrap(), None);
        let entries = store.entries("p").await.unwrap();
        assert_eq!(entries.0.keys().collect::<Vec<_>>(), ["kept"]);
        assert_eq!(gate.calls()[0].outcome, CallOutcome::Recorded);
        assert_eq!(gate.calls()[1].outcome, CallOutcome::Recorded);
    }

    #[tokio::test]
    async fn a_trial_copy_keeps_dry_run_writes_and_records_them_as_such() {
        let store = Arc::new(MemoryStateStore::scratch("p", StateMap::default()));
        let mut gate = gate(Some(small()), store.clone(), ExecutionMode::DryRun);
        gate.state_set("a".into(), "1".into(), None).await.unwrap();
        assert_eq!(gate.state_get("a".into()).await.unwrap().as_deref(), Some("1"));
        assert_eq!(gate.calls()[0].outcome, CallOutcome::Recorded);
        assert_eq!(store.entries("p").await.unwrap().0["a"].value, "1");
    }

    #[tokio::test]
    async fn past_the_bounds_is_denied_and_not_kept() {
        let store = Arc::new(MemoryStateStore::default());
        let mut gate = gate(Some(small()), store.clone(), ExecutionMode::Real);
        let denied = |r: Result<(), GateError>, says: &str| match r {
            Err(GateError::Denied(m)) => assert!(m.contains(says), "{m}"),
            other => panic!("{other:?}"),
        };
        denied(
            gate.state_set("k".into(), "123456789".into(), None).await,
            "max_value_bytes",
        );
        denied(gate.state_set("k".into(), "1".into(), Some(61)).await, "max_ttl");
        denied(gate.state_set("k".into(), "1".into(), Some(0)).await, "max_ttl");
        denied(gate.state_set("../k".into(), "1".into(), None).await, "state key");
        denied(
            gate.state_set("k".repeat(129), "1".into(), None).await,
            "state key",
        );
        gate.state_set("a".into(), "1".into(), None).await.unwrap();
        gate.state_set("b".into(), "1".into(), None).await.unwrap();
        denied(gate.state_set("c".into(), "1".into(), None).await, "max_keys");
        assert_eq!(store.entries("p").await.unwrap().0.len(), 2);
        assert!(gate.calls().iter().all(|c| c.target.len() <= MAX_STATE_KEY + 6));

        let mut without = self::gate(None, store, ExecutionMode::Real);
        assert!(
            matches!(without.state_get("a".into()).await, Err(GateError::Denied(m)) if m.contains("[capabilities.state]"))
        );
    }

    #[tokio::test]
    async fn ten_thousand_calls_stay_within_the_budget() {
        let store = Arc::new(MemoryStateStore::default());
        let mut gate = gate(Some(small()), store, ExecutionMode::Real);
        let mut refused = 0;
        for i in 0..10_000 {
            if gate.state_set("k".into(), i.to_string(), None).await.is_err() {
                refused += 1;
            }
        }
        assert_eq!(gate.calls().len(), crate::capability::MAX_CALLS_PER_INVOCATION);
        assert_eq!(refused, 10_000 - crate::capability::MAX_CALLS_PER_INVOCATION);
        assert_eq!(gate.over_budget(), refused);
    }
}
