//! On-disk cache of precompiled components, trusted only when it can prove
//! this host wrote the artifact for this exact component.
//!
//! Compiling a component takes tens of milliseconds (a Python one, seconds);
//! loading a precompiled artifact takes well under one. But an artifact is
//! native code that `Component::deserialize` maps and runs unchecked, so
//! whoever can write `cache_dir` could otherwise run code in a process that
//! holds the container engine's socket. Each file therefore carries an
//! HMAC-SHA256 over the component's hash, the engine's compatibility key and
//! the artifact, under a key kept *outside* the cache directory (the key file,
//! `0600`, made on first use). A file that is swapped from another component,
//! edited, written under another key or in an older format fails the check:
//! it is recompiled, never deserialized, and the load says why.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt as _};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The first bytes of every artifact file of this format.
const MAGIC: &[u8; 8] = b"AHCWASM1";
/// Bytes of the key and of the MAC.
const KEY_LEN: usize = 32;
const MAC_LEN: usize = 32;
const HEADER_LEN: usize = MAGIC.len() + MAC_LEN;

type HmacSha256 = Hmac<Sha256>;

/// Where the cache lives and where its key is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheLocation {
    /// The directory of artifacts.
    pub dir: PathBuf,
    /// The MAC key: a file outside `dir`, so that writing the cache
    /// directory is not enough to forge an artifact.
    pub key_file: PathBuf,
}

impl CacheLocation {
    /// The cache in `dir`, its key in the sibling file `DIR.key`
    /// (`data/cache` → `data/cache.key`).
    pub fn beside(dir: &Path) -> Self {
        let mut key_name = dir
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "cache".into());
        key_name.push(".key");
        Self {
            dir: dir.to_path_buf(),
            key_file: dir.with_file_name(key_name),
        }
    }
}

/// A cached artifact as read: the header, then the artifact.
pub struct Artifact(Vec<u8>);

impl std::ops::Deref for Artifact {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0[HEADER_LEN..]
    }
}

/// What the cache had for a component.
pub enum Lookup {
    /// Nothing cached (or the cache is off).
    Miss,
    /// An artifact this host wrote for this component and engine.
    Hit(Artifact),
    /// A file that is not provably ours; the reason, for the load's record.
    Rejected(String),
}

/// Compiled components on disk, keyed by the component's hash and the engine's configuration, so that a restart does not compile again.
pub struct ArtifactCache {
    dir: Option<Dir>,
    key: [u8; KEY_LEN],
    engine_key: String,
}

impl ArtifactCache {
    /// A cache at `location` (directory `0700` and key `0600` created if
    /// missing). If either cannot be used the cache is disabled with a
    /// warning: it only costs speed.
    pub fn open(location: &CacheLocation, engine: &wasmtime::Engine) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("{:016x}", hasher.finish());
        let opened = open_dir(&location.dir)
            .map_err(|e| format!("{}: {e}", location.dir.display()))
            .and_then(|dir| Ok((dir, load_or_make_key(&location.key_file)?)));
        match opened {
            Ok((dir, key)) => Self {
                dir: Some(dir),
                key,
                engine_key,
            },
            Err(why) => {
                tracing::warn!(error = %why, "compile cache disabled");
                Self::disabled()
            }
        }
    }

    /// A cache that never stores anything.
    pub fn disabled() -> Self {
        Self {
            dir: None,
            key: [0; KEY_LEN],
            engine_key: String::new(),
        }
    }

    fn file_name(&self, component_hash: &str) -> String {
        format!("{component_hash}-{}.cwasm", self.engine_key)
    }

    /// The MAC binds the artifact to this component and this engine: the
    /// file of one component renamed to another's name does not verify.
    fn mac(&self, component_hash: &str, artifact: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        for part in [
            MAGIC.as_slice(),
            component_hash.as_bytes(),
            b"\0",
            self.engine_key.as_bytes(),
            b"\0",
        ] {
            mac.update(part);
        }
        mac.update(artifact);
        mac
    }

    /// The artifact for a component, if cached and provably written by this
    /// host for it.
    pub fn get(&self, component_hash: &str) -> Lookup {
        let Some(dir) = &self.dir else { return Lookup::Miss };
        let name = self.file_name(component_hash);
        let data = match dir.read(&name) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Miss,
            Err(e) => return Lookup::Rejected(format!("cached artifact {name} unreadable: {e}")),
        };
        let verdict = match data.split_at_checked(HEADER_LEN) {
            Some((header, artifact)) if header.starts_with(MAGIC) => self
                .mac(component_hash, artifact)
                .verify_slice(&header[MAGIC.len()..])
                .map_err(|_| "its MAC does not match (edited, swapped from another component, or written under another key)"),
            _ => Err("not in this host's artifact format"),
        };
        match verdict {
            // The file as read, not a copy of it: a Python plugin's is ~37 MB.
            Ok(()) => Lookup::Hit(Artifact(data)),
            Err(why) => Lookup::Rejected(format!("cached artifact {name} rejected: {why}")),
        }
    }

    /// Stores an artifact, `0600`; written to a temporary name and renamed,
    /// so a crash never leaves a half-written artifact under the real name.
    pub fn put(&self, component_hash: &str, artifact: &[u8]) {
        let Some(dir) = &self.dir else { return };
        let name = self.file_name(component_hash);
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let tmp = format!(
            "{name}.tmp-{}-{}",
            std::process::id(),
            WRITES.fetch_add(1, Ordering::Relaxed)
        );
        let mac = self.mac(component_hash, artifact).finalize().into_bytes();
        let result = dir
            .open_with(&tmp, OpenOptions::new().write(true).create_new(true).mode(0o600))
            .and_then(|mut file| {
                file.write_all(MAGIC)?;
                file.write_all(&mac)?;
                file.write_all(artifact)
            })
            .and_then(|()| dir.rename(&tmp, dir, &name));
        if let Err(e) = result {
            tracing::warn!(error = %e, artifact = %name, "could not write compile cache");
            let _ = dir.remove_file(&tmp);
        }
    }
}

fn open_dir(path: &Path) -> std::io::Result<Dir> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    Dir::open_ambient_dir(path, ambient_authority())
}

/// Reads the key, or makes one: random, `0600`, written whole under a
/// temporary name and then linked into place, so that hosts starting at once
/// never read a half-written key and all agree on the one that won.
fn load_or_make_key(path: &Path) -> Result<[u8; KEY_LEN], String> {
    let fail = |e: std::io::Error| format!("key file {}: {e}", path.display());
    let read = || -> Result<[u8; KEY_LEN], String> {
        let bytes = std::fs::read(path).map_err(fail)?;
        bytes.try_into().map_err(|bytes: Vec<u8>| {
            format!(
                "key file {}: {} bytes, expected {KEY_LEN} (remove it to make a new key)",
                path.display(),
                bytes.len()
            )
        })
    };
    if path.exists() {
        return read();
    }
    let mut key = [0; KEY_LEN];
    getrandom::fill(&mut key).map_err(|e| format!("no randomness for a cache key: {e}"))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut file| file.write_all(&key).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(),
        Err(e) => Err(fail(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_sits_beside_the_cache_directory() {
        let location = CacheLocation::beside(Path::new("data/cache"));
        assert_eq!(location.key_file, Path::new("data/cache.key"));
    }

    #[test]
    fn a_key_is_made_once_private_and_then_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/cache.key");
        let made = load_or_make_key(&path).unwrap();
        assert_eq!(load_or_make_key(&path).unwrap(), made);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(&path, b"short").unwrap();
        let refused = load_or_make_key(&path).unwrap_err();
        assert!(refused.contains("5 bytes, expected 32"), "{refused}");
    }
}
