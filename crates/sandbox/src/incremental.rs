//! The compiler's incremental cache: the functions cranelift compiled,
//! kept between compiles, so that a component which shares most of its
//! functions with one compiled before compiles only the rest. A Python or
//! JavaScript plugin after an edit is that case: nearly all of its code is
//! the interpreter it carries, the same from one edit to the next.
//!
//! wasmtime asks the store for each function under a key (a hash of the
//! function's IR and of the target) and the value it gets back becomes
//! machine code in the artifact, unchecked. Whoever could write an entry
//! could therefore run code in the host, as with a forged artifact. So each
//! entry carries an HMAC-SHA256 over the key and the value, under the
//! compile cache's own key (kept outside the cache directory, see
//! `crate::cache`); an entry that does not verify is a miss, compiled
//! again and rewritten, and counted so that the compile reports it.
//!
//! The store lives in the compiler child (`compiler::child_main`), in
//! `<cache_dir>/incremental/`, one file per function, and is bounded by
//! [`MAX_BYTES`]: after each compile the least recently used entries
//! beyond it are removed.

use std::borrow::Cow;
use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt as _};
use hmac::Mac as _;
use sha2::{Digest as _, Sha256};

use crate::cache::{CacheLocation, KEY_LEN, MAC_LEN, keyed_mac, load_or_make_key, open_dir};

/// The directory of the store, inside the compile cache's directory.
pub const DIR_NAME: &str = "incremental";

/// Bytes the store may hold. A Python plugin's interpreter is ~45 MB of
/// entries and a JavaScript one's ~60 MB (BENCHMARKS.md, "Edit → test,
/// per language"): this keeps both languages and a few toolchain versions
/// of each without letting the directory grow without end.
pub const MAX_BYTES: u64 = 512 << 20;

/// What pruning brings the store down to, so that it does not prune again
/// at the next compile.
const PRUNED_TO: u64 = MAX_BYTES / 10 * 9;

/// The first bytes of every entry of this format: distinct from the
/// artifacts' (`AHCWASM1`), so that one kind of file never verifies as the other.
const MAGIC: &[u8; 8] = b"AHCINCR1";
const HEADER_LEN: usize = MAGIC.len() + MAC_LEN;

/// The line the compiler writes on stderr after a compile with the store,
/// read back by the host.
const STATS_PREFIX: &str = "autoheal-incremental-cache";

/// How one compile used the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IncrementalStats {
    /// Functions compiled (each looked up once).
    pub functions: u64,
    /// Of them, taken from the store rather than compiled.
    pub reused: u64,
    /// Entries found that did not verify (ignored, compiled again).
    pub rejected: u64,
}

impl IncrementalStats {
    /// The line the compiler reports them in.
    pub(crate) fn to_line(self) -> String {
        format!(
            "{STATS_PREFIX} functions={} reused={} rejected={}",
            self.functions, self.reused, self.rejected
        )
    }

    /// The stats of a compiler's stderr, if it reported them.
    pub(crate) fn from_output(stderr: &str) -> Option<Self> {
        let line = stderr.lines().find_map(|l| l.strip_prefix(STATS_PREFIX))?;
        let mut stats = Self::default();
        for field in line.split_whitespace() {
            let (name, value) = field.split_once('=')?;
            let value = value.parse().ok()?;
            match name {
                "functions" => stats.functions = value,
                "reused" => stats.reused = value,
                "rejected" => stats.rejected = value,
                _ => {}
            }
        }
        Some(stats)
    }

    /// The other lines of a compiler's stderr (its warnings).
    pub(crate) fn other_lines(stderr: &str) -> impl Iterator<Item = &str> {
        stderr
            .lines()
            .filter(|l| !l.starts_with(STATS_PREFIX) && !l.trim().is_empty())
    }
}

impl std::fmt::Display for IncrementalStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} functions from the incremental cache",
            self.reused, self.functions
        )?;
        if self.rejected > 0 {
            write!(
                f,
                "; {} entries failed their MAC check and were compiled again",
                self.rejected
            )?;
        }
        Ok(())
    }
}

/// cranelift's compiled functions on disk, each authenticated.
pub struct IncrementalStore {
    dir: Dir,
    key: [u8; KEY_LEN],
    lookups: AtomicU64,
    /// Lookups that were not served and compiled instead (every one ends in
    /// an insert): what cranelift itself counts as a miss.
    inserts: AtomicU64,
    rejected: AtomicU64,
    writes: AtomicU64,
}

impl std::fmt::Debug for IncrementalStore {
    // Not the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncrementalStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl IncrementalStore {
    /// The store in `location.dir` (made `0700` if missing), its entries
    /// authenticated with the key in `location.key_file`.
    pub fn open(location: &CacheLocation) -> Result<Self, String> {
        let dir = open_dir(&location.dir).map_err(|e| format!("{}: {e}", location.dir.display()))?;
        let key = load_or_make_key(&location.key_file)?;
        Ok(Self {
            dir,
            key,
            lookups: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        })
    }

    /// How the compiles with this store have used it so far.
    pub fn stats(&self) -> IncrementalStats {
        let functions = self.lookups.load(Ordering::Relaxed);
        IncrementalStats {
            functions,
            reused: functions.saturating_sub(self.inserts.load(Ordering::Relaxed)),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }

    /// cranelift's keys are hashes already, but of a length wasmtime does not
    /// promise: hashed again for a file name of fixed length.
    fn file_name(key: &[u8]) -> String {
        let digest = Sha256::digest(key);
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The MAC binds the value to its key: an entry copied under another
    /// function's name does not verify.
    fn mac(&self, key: &[u8], value: &[u8]) -> crate::cache::HmacSha256 {
        let mut mac = keyed_mac(&self.key);
        mac.update(MAGIC);
        mac.update(&(key.len() as u64).to_le_bytes());
        mac.update(key);
        mac.update(value);
        mac
    }

    /// The verified value of an entry, `None` for no entry or one that is
    /// not provably written under this key.
    fn read(&self, key: &[u8]) -> Option<Vec<u8>> {
        let name = Self::file_name(key);
        let mut file = self.dir.open(&name).ok()?.into_std();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        let verified = bytes.len() >= HEADER_LEN
            && bytes.starts_with(MAGIC)
            && self
                .mac(key, &bytes[HEADER_LEN..])
                .verify_slice(&bytes[MAGIC.len()..HEADER_LEN])
                .is_ok();
        if !verified {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // Marks it recently used, for pruning; failing that only makes it
        // look older.
        let _ = file.set_modified(SystemTime::now());
        bytes.drain(..HEADER_LEN);
        Some(bytes)
    }

    /// Writes an entry `0600` under a temporary name and renames it, so
    /// that a crash or a concurrent compile never leaves half an entry
    /// under the real name.
    fn write(&self, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        let name = Self::file_name(key);
        let tmp = format!(
            "{name}.tmp-{}-{}",
            std::process::id(),
            self.writes.fetch_add(1, Ordering::Relaxed)
        );
        // One write per entry: a compile writes thousands of them.
        let mut bytes = Vec::with_capacity(HEADER_LEN + value.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.mac(key, value).finalize().into_bytes());
        bytes.extend_from_slice(value);
        let written = self
            .dir
            .open_with(&tmp, OpenOptions::new().write(true).create_new(true).mode(0o600))
            .and_then(|mut file| file.write_all(&bytes))
            .and_then(|()| self.dir.rename(&tmp, &self.dir, &name));
        if written.is_err() {
            let _ = self.dir.remove_file(&tmp);
        }
        written
    }

    /// Removes the least recently used entries (and leftover temporary
    /// files, which are never used) while the store holds more than
    /// [`MAX_BYTES`], down to 90 % of it. The number removed.
    pub fn prune(&self) -> usize {
        self.prune_to(MAX_BYTES, PRUNED_TO)
    }

    fn prune_to(&self, max: u64, target: u64) -> usize {
        let Ok(entries) = self.dir.entries() else { return 0 };
        let mut files: Vec<(SystemTime, u64, std::ffi::OsString)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let meta = entry.metadata().ok()?;
                let used = meta
                    .modified()
                    .map(|t| t.into_std())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                meta.is_file().then(|| (used, meta.len(), entry.file_name()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
        if total <= max {
            return 0;
        }
        files.sort();
        let mut removed = 0;
        for (_, len, name) in files {
            if total <= target {
                break;
            }
            if self.dir.remove_file(&name).is_ok() {
                total = total.saturating_sub(len);
                removed += 1;
            }
        }
        removed
    }

    /// As the `CacheStore` wasmtime takes.
    pub fn into_store(self: Arc<Self>) -> Arc<dyn wasmtime::CacheStore> {
        self
    }
}

impl wasmtime::CacheStore for IncrementalStore {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        self.read(key).map(Cow::Owned)
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        self.inserts.fetch_add(1, Ordering::Relaxed);
        self.write(key, &value).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::CacheStore as _;

    fn store(root: &std::path::Path) -> IncrementalStore {
        IncrementalStore::open(&CacheLocation {
            dir: root.join("cache").join(DIR_NAME),
            key_file: root.join("cache.key"),
        })
        .unwrap()
    }

    fn entry_paths(root: &std::path::Path) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(root.join("cache").join(DIR_NAME))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    #[test]
    fn an_entry_is_read_back_as_written_and_counted_as_reused() {
        let root = tempfile::tempdir().unwrap();
        let store = store(root.path());
        assert!(store.get(b"f1").is_none());
        assert!(store.insert(b"f1", b"machine code".to_vec()));
        assert_eq!(store.get(b"f1").as_deref(), Some(&b"machine code"[..]));
        assert_eq!(
            store.stats(),
            IncrementalStats {
                functions: 2,
                reused: 1,
                rejected: 0
            }
        );
    }

    #[test]
    fn an_edited_entry_or_one_moved_to_another_key_is_not_used() {
        let root = tempfile::tempdir().unwrap();
        let store = store(root.path());
        store.insert(b"f1", b"code of f1".to_vec());
        store.insert(b"f2", b"code of f2".to_vec());
        let dir = root.path().join("cache").join(DIR_NAME);
        let f1 = dir.join(IncrementalStore::file_name(b"f1"));
        let f2 = dir.join(IncrementalStore::file_name(b"f2"));
        // f1's entry, MAC and all, under f2's name.
        std::fs::copy(&f1, &f2).unwrap();
        assert!(store.get(b"f2").is_none());
        // One byte of f1's value changed.
        let mut bytes = std::fs::read(&f1).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&f1, &bytes).unwrap();
        assert!(store.get(b"f1").is_none());
        assert_eq!(store.stats().rejected, 2);
        // Compiled again, the rewritten entry is used.
        store.insert(b"f1", b"code of f1".to_vec());
        assert_eq!(store.get(b"f1").as_deref(), Some(&b"code of f1"[..]));
    }

    #[test]
    fn an_entry_written_under_another_key_is_not_used() {
        let root = tempfile::tempdir().unwrap();
        store(root.path()).insert(b"f1", b"code".to_vec());
        std::fs::write(root.path().join("cache.key"), [7u8; KEY_LEN]).unwrap();
        let other = store(root.path());
        assert!(other.get(b"f1").is_none());
        assert_eq!(other.stats().rejected, 1);
    }

    #[test]
    fn pruning_removes_the_least_recently_used_entries_beyond_the_bound() {
        let root = tempfile::tempdir().unwrap();
        let store = store(root.path());
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        for (i, key) in [b"a", b"b", b"c", b"d"].iter().enumerate() {
            store.insert(*key, vec![0; 1000]);
            let path = root
                .path()
                .join("cache")
                .join(DIR_NAME)
                .join(IncrementalStore::file_name(*key));
            let file = std::fs::File::options().write(true).open(path).unwrap();
            file.set_modified(old + std::time::Duration::from_secs(i as u64))
                .unwrap();
        }
        // "a" is the oldest written, but was just used.
        assert!(store.get(b"a").is_some());
        let entry = (HEADER_LEN + 1000) as u64;
        assert_eq!(
            store.prune_to(entry * 4, entry * 2),
            0,
            "within the bound, nothing goes"
        );
        assert_eq!(store.prune_to(entry * 3, entry * 2), 2);
        assert_eq!(entry_paths(root.path()).len(), 2);
        assert!(store.get(b"a").is_some(), "the recently used entry stays");
        assert!(store.get(b"d").is_some(), "the newest entry stays");
        assert!(store.get(b"b").is_none() && store.get(b"c").is_none());
    }

    #[test]
    fn the_stats_line_reads_back() {
        let stats = IncrementalStats {
            functions: 41300,
            reused: 41233,
            rejected: 2,
        };
        let stderr = format!("a warning\n{}\n", stats.to_line());
        assert_eq!(IncrementalStats::from_output(&stderr), Some(stats));
        assert_eq!(
            IncrementalStats::other_lines(&stderr).collect::<Vec<_>>(),
            ["a warning"]
        );
        assert_eq!(IncrementalStats::from_output("no stats"), None);
    }
}
