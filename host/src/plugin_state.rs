//! Plugins' state (`state.get`, `set`, `delete`), kept on disk beside the
//! audit trail: `<trail's directory>/state/<plugin>.json`, one JSON object
//! of keys per plugin. Each write replaces the file whole (temporary file,
//! fsync, rename, fsync of the directory), so a host that dies mid-write
//! leaves the old state or the new, never a mix; a restarted host reads it
//! back. Expired keys are dropped when the file is read and by every write.
//!
//! Each plugin's keys are also held in memory once read; one lock orders
//! the writes of all plugins (they are small and rare next to the calls
//! that read them).
//!
//! Replicas of a cluster keep plugins' state in etcd instead
//! ([`ClusterStateStore`], `cluster::plugin_state`), so that what one
//! replica's invocation set, the next invocation reads on any replica.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Mutex;

use autoheal_sandbox::capability::{StateEntry, StateMap, StateStore, StoreError, state_now};

use crate::cluster::Cluster;

/// The state directory beside the trail at `audit_path`.
pub fn state_dir(audit_path: &Path) -> PathBuf {
    audit_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("state")
}

/// Plugins' state in files of `dir`.
pub struct FileStateStore {
    dir: PathBuf,
    plugins: Mutex<BTreeMap<String, StateMap>>,
}

impl FileStateStore {
    /// A store in `dir` (made on the first write).
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            plugins: Mutex::new(BTreeMap::new()),
        }
    }

    fn file(&self, plugin: &str) -> Result<PathBuf, StoreError> {
        // Manifests allow no other names; a path is never built from more.
        if plugin.is_empty()
            || !plugin
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(StoreError::Failed(format!("{plugin:?} is not a plugin name")));
        }
        Ok(self.dir.join(format!("{plugin}.json")))
    }

    /// `plugin`'s keys, read from its file the first time.
    async fn with_plugin<T>(
        &self,
        plugin: &str,
        change: impl FnOnce(&mut StateMap, u64) -> Result<(T, bool), StoreError>,
    ) -> Result<T, StoreError> {
        let file = self.file(plugin)?;
        let mut plugins = self.plugins.lock().await;
        if !plugins.contains_key(plugin) {
            let read = tokio::task::spawn_blocking({
                let file = file.clone();
                move || read_file(&file)
            })
            .await
            .map_err(|e| StoreError::Failed(e.to_string()))??;
            plugins.insert(plugin.to_owned(), read);
        }
        let map = plugins.get_mut(plugin).expect("inserted above");
        let mut before = map.clone();
        let now = state_now();
        let (answer, changed) = change(map, now)?;
        if changed {
            let bytes = serde_json::to_vec_pretty(&*map).expect("state serializes");
            let written = tokio::task::spawn_blocking(move || write_atomically(&file, &bytes))
                .await
                .map_err(|e| StoreError::Failed(e.to_string()))?;
            if let Err(e) = written {
                // Not kept on disk: not kept at all.
                std::mem::swap(map, &mut before);
                return Err(StoreError::Failed(format!("the state could not be written: {e}")));
            }
        }
        Ok(answer)
    }
}

/// A plugin's state file; none is an empty state. Expired keys are dropped.
pub fn read_file(file: &Path) -> Result<StateMap, StoreError> {
    let mut map: StateMap = match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Failed(format!("{}: not a state file: {e}", file.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateMap::default(),
        Err(e) => return Err(StoreError::Failed(format!("{}: {e}", file.display()))),
    };
    map.drop_expired(state_now());
    Ok(map)
}

/// Replaces `file` by `bytes`: all of it or nothing, on disk when it returns.
fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = file.parent().expect("a state file is in the state directory");
    std::fs::create_dir_all(dir)?;
    let temporary = file.with_extension("json.tmp");
    let mut out = std::fs::File::create(&temporary)?;
    out.write_all(bytes)?;
    out.sync_all()?;
    drop(out);
    std::fs::rename(&temporary, file)?;
    std::fs::File::open(dir)?.sync_all()
}

#[async_trait::async_trait]
impl StateStore for FileStateStore {
    async fn get(&self, plugin: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.with_plugin(plugin, |map, now| {
            Ok((map.get(key, now).map(str::to_owned), false))
        })
        .await
    }

    async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: &str,
        expires: u64,
        max_keys: usize,
    ) -> Result<(), StoreError> {
        self.with_plugin(plugin, |map, now| {
            map.set(key, value, expires, max_keys, now)?;
            Ok(((), true))
        })
        .await
    }

    async fn delete(&self, plugin: &str, key: &str) -> Result<bool, StoreError> {
        self.with_plugin(plugin, |map, now| {
            let was_set = map.delete(key, now);
            Ok((was_set, true))
        })
        .await
    }

    async fn entries(&self, plugin: &str) -> Result<StateMap, StoreError> {
        self.with_plugin(plugin, |map, now| {
            map.drop_expired(now);
            Ok((map.clone(), false))
        })
        .await
    }
}

/// Plugins' state in the cluster's etcd, shared by the replicas.
pub struct ClusterStateStore {
    cluster: Arc<Cluster>,
}

impl ClusterStateStore {
    /// The state of the plugins of `cluster`.
    pub fn new(cluster: Arc<Cluster>) -> Self {
        Self { cluster }
    }
}

fn unreached(e: crate::cluster::ClusterError) -> StoreError {
    StoreError::Failed(format!("the cluster does not answer: {e}"))
}

#[async_trait::async_trait]
impl StateStore for ClusterStateStore {
    async fn get(&self, plugin: &str, key: &str) -> Result<Option<String>, StoreError> {
        let entry = self.cluster.state_entry(plugin, key).await.map_err(unreached)?;
        Ok(entry.filter(|e| e.expires > state_now()).map(|e| e.value))
    }

    async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: &str,
        expires: u64,
        max_keys: usize,
    ) -> Result<(), StoreError> {
        let mut live = self.entries(plugin).await?;
        // The same bound as a file's, on the keys the cluster holds now.
        live.set(key, value, expires, max_keys, state_now())?;
        let entry = StateEntry {
            value: value.to_owned(),
            expires,
        };
        self.cluster
            .put_state(plugin, key, &entry)
            .await
            .map_err(unreached)
    }

    async fn delete(&self, plugin: &str, key: &str) -> Result<bool, StoreError> {
        let was_set = self.get(plugin, key).await?.is_some();
        self.cluster.delete_state(plugin, key).await.map_err(unreached)?;
        Ok(was_set)
    }

    async fn entries(&self, plugin: &str) -> Result<StateMap, StoreError> {
        let entries = self.cluster.state_entries(plugin).await.map_err(unreached)?;
        let mut map = StateMap(entries.into_iter().collect());
        map.drop_expired(state_now());
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_sandbox::capability::StateEntry;

    #[tokio::test]
    async fn state_survives_a_new_store_and_drops_expired_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStateStore::new(dir.path().join("state"));
        store.set("p", "a", "1", u64::MAX, 4).await.unwrap();
        store.set("p", "b", "2", u64::MAX, 4).await.unwrap();
        store.set("q", "a", "other", u64::MAX, 4).await.unwrap();
        assert!(store.delete("p", "b").await.unwrap());
        assert!(!dir.path().join("state/p.json.tmp").exists());

        let again = FileStateStore::new(dir.path().join("state"));
        assert_eq!(again.get("p", "a").await.unwrap().as_deref(), Some("1"));
        assert_eq!(again.get("p", "b").await.unwrap(), None);
        assert_eq!(again.get("q", "a").await.unwrap().as_deref(), Some("other"));

        // A key written with an expiry in the past is gone when read back.
        let file = dir.path().join("state/p.json");
        let mut map = read_file(&file).unwrap();
        map.0.insert(
            "old".into(),
            StateEntry {
                value: "x".into(),
                expires: 1,
            },
        );
        std::fs::write(&file, serde_json::to_vec(&map).unwrap()).unwrap();
        let third = FileStateStore::new(dir.path().join("state"));
        assert_eq!(
            third.entries("p").await.unwrap().0.keys().collect::<Vec<_>>(),
            ["a"]
        );
    }

    #[tokio::test]
    async fn a_broken_file_is_an_error_not_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.json"), "{not json").unwrap();
        let store = FileStateStore::new(dir.path().to_owned());
        let err = store.get("p", "a").await.unwrap_err();
        assert!(err.to_string().contains("not a state file"), "{err}");
        assert!(store.get("../etc", "a").await.is_err());
    }

    #[tokio::test]
    async fn a_write_that_cannot_be_kept_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        // The temporary file's place is taken by a directory: no write can land.
        std::fs::create_dir_all(dir.path().join("p.json.tmp")).unwrap();
        let store = FileStateStore::new(dir.path().to_owned());
        assert!(store.set("p", "a", "1", u64::MAX, 4).await.is_err());
        assert!(store.entries("p").await.unwrap().0.is_empty());
    }

    #[test]
    fn the_state_is_beside_the_trail() {
        assert_eq!(
            state_dir(Path::new("/var/lib/autoheal/audit.jsonl")),
            Path::new("/var/lib/autoheal/state")
        );
        assert_eq!(state_dir(Path::new("audit.jsonl")), Path::new("./state"));
    }
}
